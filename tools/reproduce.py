#!/usr/bin/env python
"""Reproduce the paper's two tables.

``python tools/reproduce.py --help`` lists the options. The code is
:mod:`alignshift.apps.reproduce.driver`; the console script ``alignshift-reproduce`` is the same command.
"""

import sys

from alignshift.apps.reproduce.driver import cli, main  # noqa: F401  (main(argv): for callers that import the tool)

if __name__ == "__main__":
    sys.exit(cli())
