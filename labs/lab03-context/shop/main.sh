echo "the shop is open, with $(ls vendor | wc -l) packages installed"
