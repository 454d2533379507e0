"""AlignShift: thickness-aware 3D lesion detection on CT, for PyTorch 2 and MMDetection 3.

The names users call, at the top level::

    import alignshift
    net = alignshift.convert(torchvision.models.resnet18(), conv="alignshift", in_channels=1)
    y = alignshift.align_shift(x, thickness)      # x: (B, C, D, H, W), thickness: (B,) mm

They are imported on first use, so ``import alignshift`` (and the command-line tools of
``alignshift.apps``) do not pay for importing torch. The method is framework-free: no module of this
package imports mmdet, mmcv or mmengine, and only the tooling in ``alignshift.apps`` uses them, inside
the commands that build a detector.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, List

from .version import __version__

# name -> submodule that defines it; each is also in that submodule's __all__
_EXPORTS: Dict[str, str] = {
    "convert": "converter",
    "UnsupportedLayerError": "converter",
    "CONV_TYPES": "converter",
    "align_shift": "ops",
    "tsm_shift": "ops",
    "depth_shift": "ops",
    "shift_backend": "ops",
    "SliceThickness": "ops",
    "Conv1xKxK": "nn",
    "TSMConv": "nn",
    "AlignShiftConv": "nn",
    "A3DConv": "nn",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'alignshift' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
