#!/usr/bin/env python
"""List and fetch the published snapshots, converted for this project (also ``python -m alignshift.zoo``).

    python tools/download.py --list
    python tools/download.py download alignshift_7slice [--dest checkpoints/] [--from FILE]
"""

from __future__ import annotations

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from any folder

from alignshift.cli import run_cli  # noqa: E402
from alignshift.zoo.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(main, prog="download.py"))
