#!/usr/bin/env python
"""DL_info.csv -> one annotation JSON per split.

``python tools/prepare_deeplesion.py --help`` lists the options. The code is
:mod:`alignshift.apps.prepare_deeplesion`;
the console script ``alignshift-prepare-deeplesion`` is the same command.
"""

import sys

from alignshift.apps.prepare_deeplesion import cli, main  # noqa: F401  (main(argv): for callers that import the tool)

if __name__ == "__main__":
    sys.exit(cli())
