"""Hints the command-line tools add to the core's errors (see :func:`alignshift.apps.cli.run_cli`)."""

from __future__ import annotations

__all__ = ["DATA_HINT", "PRETRAINED_HINT"]

# What a tool says when the data is not where a config looks for it.
DATA_HINT = ("DeepLesion is expected in $DEEPLESION_ROOT (default data/DeepLesion/, relative to the "
             "current folder), holding DL_info.csv, Images_png/ and annotations/. Make it with "
             "tools/prepare_deeplesion.py --data-root DIR (DeepLesion itself; "
             "tools/download_deeplesion.py fetches it), or try the pipeline on "
             "tools/make_synthetic_deeplesion.py --out DIR followed by "
             "tools/prepare_deeplesion.py --data-root DIR")

# The backbone's ImageNet weights could not be fetched.
PRETRAINED_HINT = ("or give a local copy with --cfg-options model.backbone.pretrained=/path/to/"
                   "densenet121-a639ec97.pth (model.backbone.pretrained=None trains from scratch)")
