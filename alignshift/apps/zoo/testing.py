"""A stand-in for a published snapshot: the mmdet 1.0rc1 key layout with random weights.

For tests and for trying the download / conversion path without the real files.
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from .convert import v1_state_dict_layout

__all__ = ["V1_MASK_HEAD_SHAPES", "fake_published_checkpoint"]

V1_MASK_HEAD_SHAPES = {
    **{f"mask_head.convs.{i}.conv.weight": (256, 512 if i == 0 else 256, 3, 3) for i in range(4)},
    **{f"mask_head.convs.{i}.conv.bias": (256,) for i in range(4)},
    "mask_head.upsample.weight": (256, 256, 2, 2), "mask_head.upsample.bias": (256,),
    "mask_head.conv_logits.weight": (2, 256, 1, 1), "mask_head.conv_logits.bias": (2,),
}
"""The published FCNMaskHead (4 convs of 256, deconv upsampling, 2 classes)."""

_CONFIG_TYPES = {"alignshift": "DenseNetCustomTrunc3dAlign", "tsm": "DenseNetCustomTrunc3dTSM",
                 "2.5d": "DenseNetCustomTrunc"}


def _randn(shape, g: torch.Generator, std: float, block: int = 1 << 16) -> torch.Tensor:
    n = int(torch.Size(shape).numel())
    if n <= block:
        return torch.randn(shape, generator=g) * std
    # big weights: one random block tiled (a copy, not n random draws: seconds saved per test)
    base = torch.randn(block + 1, generator=g) * std  # block + 1: rows do not repeat in step
    return base.repeat(n // (block + 1) + 1)[:n].view(shape)


def fake_published_checkpoint(num_slices: int = 3, variant: str = "alignshift", seed: int = 0,
                              mask_head: bool = True, optimizer: bool = True) -> Dict[str, Any]:
    """``{'meta', 'state_dict'[, 'optimizer']}`` as mmdet 1.0rc1 saved the published snapshots.

    Weights are small random numbers (std 0.01, BN variances positive), enough for a finite
    forward pass; ``meta['config']`` names the published backbone type as mmdet 1.x stored it.
    """
    g = torch.Generator().manual_seed(seed)
    shapes = dict(v1_state_dict_layout(num_slices, variant))
    if mask_head:
        shapes.update(V1_MASK_HEAD_SHAPES)
    sd = {}
    for k, shape in shapes.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(100, dtype=torch.long)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith(".weight") and len(shape) == 1:  # BN scale
            sd[k] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[k] = _randn(shape, g, 0.01)
    meta = {"mmdet_version": "1.0rc1+unknown", "CLASSES": ("lesion",), "epoch": 20, "iter": 1,
            "config": f"model = dict(type='MaskRCNN', backbone=dict(type='{_CONFIG_TYPES[variant]}', "
                      f"n_cts={num_slices}))"}
    ckpt: Dict[str, Any] = {"meta": meta, "state_dict": sd}
    if optimizer:
        ckpt["optimizer"] = {"state": {}, "param_groups": [{"lr": 0.02, "params": []}]}
    return ckpt
