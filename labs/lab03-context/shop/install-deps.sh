# Pretend to download and install every package listed in deps.txt: slow on purpose
# (one second per package), like `pip install -r requirements.txt` or `npm ci`.
mkdir -p vendor
while read -r name version; do
    [ -n "$name" ] || continue
    echo "downloading $name $version ..."
    sleep 1
    echo "$version" > "vendor/$name"
done < deps.txt
echo "installed $(ls vendor | wc -l) packages"
