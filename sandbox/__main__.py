"""``python -m sandbox`` is the ``sandbox`` command."""

from .cli import main

raise SystemExit(main())
