#!/usr/bin/env python
"""Train a detector (mmdet's tools/train.py CLI).

``python tools/train.py --help`` lists the options. The code is
:mod:`alignshift.apps.train`; the console script ``alignshift-train`` is the same command.
"""

import sys

from alignshift.apps.train import cli, main  # noqa: F401  (main(argv): for callers that import the tool)

if __name__ == "__main__":
    sys.exit(cli())
