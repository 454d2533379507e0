#!/usr/bin/env python
"""Download DeepLesion's image zips (resumable, checked) and unpack them.

``python tools/download_deeplesion.py --help`` lists the options. The code is
:mod:`alignshift.apps.download_deeplesion`;
the console script ``alignshift-download-deeplesion`` is the same command.
"""

import sys

from alignshift.apps.download_deeplesion import cli, main  # noqa: F401  (main(argv): for callers that import the tool)

if __name__ == "__main__":
    sys.exit(cli())
