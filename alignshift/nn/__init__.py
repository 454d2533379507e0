"""Thickness-aware 1xKxK convolutions with 2D-shaped weights."""

from .conv import A3DConv, AlignShiftConv, Conv1xKxK, TSMConv
from .layers import (
    FlattenDepth,
    SliceGroupNorm,
    SliceInstanceNorm2d,
    SliceLayerNorm,
    SlicePermute,
    SliceWise,
    slicewise,
)

__all__ = ["A3DConv", "AlignShiftConv", "Conv1xKxK", "FlattenDepth", "SliceGroupNorm", "SliceInstanceNorm2d",
           "SliceLayerNorm", "SlicePermute", "SliceWise", "TSMConv", "slicewise"]
