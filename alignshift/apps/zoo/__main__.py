"""``python -m alignshift.apps.zoo``: the same CLI as ``tools/download.py``."""

import sys

from ..cli import run_cli
from .cli import main

if __name__ == "__main__":
    sys.exit(run_cli(main, prog="python -m alignshift.apps.zoo"))
