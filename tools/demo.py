#!/usr/bin/env python
"""The whole loop on built-in synthetic data, on a CPU (make demo).

``python tools/demo.py --help`` lists the options. The code is
:mod:`alignshift.apps.demo`; the console script ``alignshift-demo`` is the same command.
"""

import sys

from alignshift.apps.demo import cli, main  # noqa: F401  (main(argv): for callers that import the tool)

if __name__ == "__main__":
    sys.exit(cli())
