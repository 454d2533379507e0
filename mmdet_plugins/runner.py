"""A Runner for today's stack: safe checkpoint loading under torch >= 2.6 and DDP without CUDA.

Both fixes live here, once, and are opt-in through ``runner_type = 'AlignShiftRunner'`` (set in
``configs/_base_/default_runtime.py``); nothing in torch or mmengine is patched.

* torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 calls
  ``torch.load`` without the argument, so its own checkpoints fail to load: they carry the
  MessageHub's ``HistoryBuffer`` objects, numpy arrays, and ``getattr`` references to the buffer's
  statistics methods. Rather than turning the safety off, checkpoints are saved without those
  method references (the buffers get them back from their class on load) and loading is wrapped
  in ``torch.serialization.safe_globals`` with exactly the remaining classes allow-listed.
  Checkpoints written by stock mmengine still hold ``getattr``; for those the error says so and
  ``trusted_checkpoints=True`` in the config (never the default) loads them unrestricted.
* mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and its DDP wrapper passes
  ``device_ids``; on a CPU-only machine we start a gloo process group and wrap without them.
  torch's ``SyncBatchNorm`` runs on GPUs only ("SyncBatchNorm layers only work with GPU
  modules"), so there the config's ``sync_bn`` is left out (a warning says so): each process
  keeps its own BatchNorm statistics, while the parameters stay identical across processes.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, List

import numpy as np
import torch
import torch.distributed as dist
from mmengine.logging import HistoryBuffer
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

__all__ = ["AlignShiftRunner", "CHECKPOINT_SAFE_GLOBALS", "CheckpointHistoryBuffer",
           "checkpoint_safe_globals"]


def _numpy_globals() -> List[object]:
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed np.core
    names = ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool_")
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype,
            *(type(np.dtype(n)) for n in names)]


class CheckpointHistoryBuffer(HistoryBuffer):
    """A ``HistoryBuffer`` that pickles its data but not its statistics methods."""

    @classmethod
    def from_buffer(cls, buf: HistoryBuffer) -> CheckpointHistoryBuffer:
        new = cls.__new__(cls)
        new.__dict__.update({k: v for k, v in buf.__dict__.items() if k != "statistics_methods"})
        return new

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "statistics_methods"}


# What mmengine puts into a checkpoint besides tensors and builtin containers.
CHECKPOINT_SAFE_GLOBALS: List[object] = [HistoryBuffer, CheckpointHistoryBuffer, *_numpy_globals()]


@contextlib.contextmanager
def checkpoint_safe_globals(trusted: bool = False) -> Iterator[None]:
    """Allow-list mmengine's checkpoint contents for ``torch.load(weights_only=True)``.

    ``trusted=True`` lifts the restriction for the duration (only for files you trust).
    """
    if trusted:
        old = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
        os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
            else:
                os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = old
        return
    try:
        with torch.serialization.safe_globals(CHECKPOINT_SAFE_GLOBALS):
            yield
    except Exception as e:
        if "Weights only load failed" in str(e):
            raise RuntimeError(
                f"{e}\n\nThis checkpoint holds objects outside alignshift's allow-list (stock "
                "mmengine checkpoints pickle 'getattr'). If you trust the file, load it with "
                "--cfg-options trusted_checkpoints=True.") from None
        raise


@RUNNERS.register_module()
class AlignShiftRunner(Runner):
    """mmengine ``Runner`` with the two runtime fixes described in this module."""

    def setup_env(self, env_cfg: dict) -> None:
        if self.distributed and not dist.is_initialized() and not torch.cuda.is_available():
            dist.init_process_group(backend="gloo")
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg, model):
        if not (self.distributed and not torch.cuda.is_available()):
            return super().wrap_model(model_wrapper_cfg, model)
        if model_wrapper_cfg is None:
            model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None,
                                     broadcast_buffers=False,
                                     find_unused_parameters=self.cfg.get("find_unused_parameters",
                                                                         False))
        sync_bn = self.cfg.get("sync_bn", None)
        if sync_bn is None:
            return super().wrap_model(model_wrapper_cfg, model)
        self.logger.warning(f"sync_bn={sync_bn!r} is not applied: SyncBatchNorm needs GPUs, and "
                            "this process trains on a CPU; each process keeps its own BatchNorm "
                            "statistics")
        self.cfg.sync_bn = None  # for mmengine's wrap_model only: the dumped config keeps it
        try:
            return super().wrap_model(model_wrapper_cfg, model)
        finally:
            self.cfg.sync_bn = sync_bn

    def call_hook(self, fn_name: str, **kwargs) -> None:
        if fn_name == "before_save_checkpoint":
            scalars = kwargs["checkpoint"].get("message_hub", {}).get("log_scalars", {})
            for key, buf in scalars.items():
                if isinstance(buf, HistoryBuffer):
                    scalars[key] = CheckpointHistoryBuffer.from_buffer(buf)
        super().call_hook(fn_name, **kwargs)

    def load_checkpoint(self, *args, **kwargs):
        with checkpoint_safe_globals(bool(self.cfg.get("trusted_checkpoints", False))):
            return super().load_checkpoint(*args, **kwargs)

    def resume(self, *args, **kwargs):
        with checkpoint_safe_globals(bool(self.cfg.get("trusted_checkpoints", False))):
            return super().resume(*args, **kwargs)
