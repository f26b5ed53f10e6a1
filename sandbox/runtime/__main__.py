"""``python -m sandbox.runtime VERB ...``: the runc-compatible command (see :mod:`cli`)."""

import sys

from .cli import main

sys.exit(main())
