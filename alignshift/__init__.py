"""AlignShift: thickness-aware 3D lesion detection on CT, for PyTorch 2 and MMDetection 3."""

from .version import __version__

__all__ = ["__version__"]
