#!/usr/bin/env python
"""Detect lesions in a CT volume (NIfTI, NRRD, MHA or a DICOM series folder).

``python tools/infer_volume.py --help`` lists the options. The code is
:mod:`alignshift.apps.infer_volume`; the console script ``alignshift-infer`` is the same command.
"""

import sys

from alignshift.apps.infer_volume import cli, main  # noqa: F401  (main(argv): for callers that import the tool)

if __name__ == "__main__":
    sys.exit(cli())
