"""``python -m sandbox.supervisor --root DIR [--ready-fd N]``: run the store's supervisor."""

import argparse
import sys
from pathlib import Path

from .server import serve

parser = argparse.ArgumentParser(prog="python -m sandbox.supervisor")
parser.add_argument("--root", required=True)
parser.add_argument("--ready-fd", type=int)
args = parser.parse_args()
sys.exit(serve(Path(args.root).absolute(), args.ready_fd))
