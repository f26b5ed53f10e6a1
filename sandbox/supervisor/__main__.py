"""``python -m sandbox.supervisor --root DIR [--ready-fd N]``: run the store's supervisor."""

import argparse
import os
import sys
from pathlib import Path

if os.geteuid() != 0:  # a user's supervisor lives in their rootless namespace, whoever started it
    from .. import rootless
    rootless.join_if_wanted()

from .server import serve  # noqa: E402 - after the join: nothing may start a thread before it

parser = argparse.ArgumentParser(prog="python -m sandbox.supervisor")
parser.add_argument("--root", required=True)
parser.add_argument("--ready-fd", type=int)
args = parser.parse_args()
sys.exit(serve(Path(args.root).absolute(), args.ready_fd))
