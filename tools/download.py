#!/usr/bin/env python
"""List and fetch the published snapshots, converted for this project.

``python tools/download.py --help`` lists the options. The code is
:mod:`alignshift.apps.zoo.cli`; the console script ``alignshift-download`` is the same command.
"""

import sys

from alignshift.apps.zoo.cli import cli, main  # noqa: F401  (main(argv): for callers that import the tool)

if __name__ == "__main__":
    sys.exit(cli())
