"""Mixed-precision training on a GPU or a CPU: the config change behind ``tools/train.py --amp``.

* CUDA: mmengine's ``AmpOptimWrapper`` (float16 autocast, dynamic loss scale), as mmdet does.
* CPU: mmengine 0.10.7's ``AmpOptimWrapper`` refuses to be built without a GPU ("only available
  training on gpu, npu, mlu or musa"), so :class:`AutocastOptimWrapper` takes its place:
  bfloat16 autocast around the forward pass, no loss scale (bfloat16 has float32's exponent
  range, so gradients do not underflow as they do in float16).

The detector's RPN and RoI heads run in float32 under bfloat16 autocast (mmcv's CPU NMS and
RoIAlign take float32 only); see :func:`mmdet_plugins.detector.heads_need_float32`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

__all__ = ["AutocastOptimWrapper", "enable_amp"]

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward pass runs under ``torch.autocast(device_type, dtype)``.

    Without a loss scale: meant for bfloat16 (any device). Parameters, gradients and the
    optimiser state stay float32; clipping and accumulation are ``OptimWrapper``'s own.

    Args:
        device_type: ``'cpu'`` or ``'cuda'``.
        dtype: ``'bfloat16'`` (default) or ``'float16'`` (float16 needs a loss scale: on CUDA use
            mmengine's ``AmpOptimWrapper``).
    """

    def __init__(self, device_type: str = "cpu", dtype: str = "bfloat16", **kwargs) -> None:
        super().__init__(**kwargs)
        if dtype not in _DTYPES:
            raise ValueError(f"AutocastOptimWrapper dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        self.device_type, self.cast_dtype = device_type, _DTYPES[dtype]

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        with super().optim_context(model), torch.autocast(self.device_type, dtype=self.cast_dtype):
            yield


def enable_amp(cfg: Config, device: str) -> None:
    """Switch ``cfg.optim_wrapper`` to mixed precision on ``device`` (``'cuda'`` or ``'cpu'``).

    CUDA: ``AmpOptimWrapper`` with a dynamic loss scale (float16). CPU: ``AutocastOptimWrapper``
    (bfloat16, no loss scale). The optimiser, clipping and the other settings are kept.
    """
    if device == "cuda":
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.loss_scale = "dynamic"
    elif device == "cpu":
        cfg.optim_wrapper.type = "AutocastOptimWrapper"
        cfg.optim_wrapper.device_type = "cpu"
        cfg.optim_wrapper.dtype = "bfloat16"
    else:
        raise ValueError(f"mixed precision runs on 'cuda' or 'cpu', got device {device!r}")
