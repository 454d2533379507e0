#!/usr/bin/env python
"""FROC of a predictions file against its ground truth.

``python tools/eval_froc.py --help`` lists the options. The code is
:mod:`alignshift.apps.eval_froc`; the console script ``alignshift-eval-froc`` is the same command.
"""

import sys

from alignshift.apps.eval_froc import cli, main  # noqa: F401  (main(argv): for callers that import the tool)

if __name__ == "__main__":
    sys.exit(cli())
