#!/usr/bin/env python
"""Paired comparison of two detectors' predictions on the same test split.

``python tools/compare_froc.py --help`` lists the options. The code is
:mod:`alignshift.apps.compare_froc`; the console script ``alignshift-compare-froc`` is the same
command.
"""

import sys

from alignshift.apps.compare_froc import cli, main  # noqa: F401  (main(argv): for callers that import the tool)

if __name__ == "__main__":
    sys.exit(cli())
