"""Backbones: the paper's truncated DenseNet-121 in 2.5D and 3D variants."""

from .densenet import (
    DENSENET121_URL,
    DenseNetBackbone3D,
    DenseNetBackbone25D,
    TruncatedDenseNet2d,
    load_imagenet_weights,
)

__all__ = ["DENSENET121_URL", "DenseNetBackbone25D", "DenseNetBackbone3D", "TruncatedDenseNet2d",
           "load_imagenet_weights"]
