#!/usr/bin/env python
"""Convert a published mmdet 1.x snapshot into this project's detector.

``python tools/convert_official_checkpoint.py --help`` lists the options. The code is
:mod:`alignshift.apps.convert_official_checkpoint`;
the console script ``alignshift-convert-checkpoint`` is the same command.
"""

import sys

from alignshift.apps.convert_official_checkpoint import cli, main  # noqa: F401  (main(argv): for callers that import the tool)

if __name__ == "__main__":
    sys.exit(cli())
