#!/usr/bin/env python
"""Test a detector and report DeepLesion FROC (mmdet's tools/test.py CLI).

``python tools/test.py --help`` lists the options. The code is
:mod:`alignshift.apps.test`; the console script ``alignshift-test`` is the same command.
"""

import sys

from alignshift.apps.test import cli, main  # noqa: F401  (main(argv): for callers that import the tool)

if __name__ == "__main__":
    sys.exit(cli())
