#!/usr/bin/env python
"""Write a synthetic dataset in the DeepLesion release format.

``python tools/make_synthetic_deeplesion.py --help`` lists the options. The code is
:mod:`alignshift.apps.make_synthetic_deeplesion`;
the console script ``alignshift-make-synthetic`` is the same command.
"""

import sys

from alignshift.apps.make_synthetic_deeplesion import cli, main  # noqa: F401  (main(argv): for callers that import the tool)

if __name__ == "__main__":
    sys.exit(cli())
