"""Thickness-aware 1xKxK convolutions with 2D-shaped weights."""

from .conv import A3DConv, AlignShiftConv, Conv1xKxK, TSMConv
from .layers import SliceGroupNorm, SliceInstanceNorm2d, SliceWise, slicewise

__all__ = ["A3DConv", "AlignShiftConv", "Conv1xKxK", "SliceGroupNorm", "SliceInstanceNorm2d", "SliceWise",
           "TSMConv", "slicewise"]
