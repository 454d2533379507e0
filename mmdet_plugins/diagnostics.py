"""Training diagnostics, off unless a config adds them to ``custom_hooks``.

``GradNormRecorderHook`` writes one JSON line per training iteration with the total gradient norm
(before clipping), the norm of each layer group, the learning rate and the losses: what it takes
to see where and when a training run diverges. Add it with::

    custom_hooks = [dict(type="GradNormRecorderHook")]
"""

from __future__ import annotations

import json
import math
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from torch import nn

__all__ = ["GradNormRecorderHook", "layer_group"]


def layer_group(name: str) -> str:
    """The layer group of a parameter name: a DenseNet stage, a neck part or a head.

    ``backbone.net.body.model.features.denseblock2.denselayer3.conv1.weight`` -> ``denseblock2``;
    ``backbone.net.top_down.laterals.0.weight`` -> ``top_down``; ``rpn_head.rpn_conv.weight`` ->
    ``rpn_head``.
    """
    parts = name.split(".")
    if "features" in parts[:-1]:
        stage = parts[parts.index("features") + 1]
        return "stem" if stage in ("conv0", "norm0") else stage
    if parts[0] == "backbone" and len(parts) > 2 and parts[1] == "net":
        return parts[2]
    if parts[0] == "roi_head" and len(parts) > 2:
        return f"roi_head.{parts[2] if parts[1] == 'bbox_head' else parts[1]}"
    return parts[0]


@HOOKS.register_module()
class GradNormRecorderHook(Hook):
    """Record gradient norms per layer group at every training step.

    Writes ``<work_dir>/<file_name>``: one JSON object per iteration with ``iter``, ``epoch``,
    ``lr``, ``grad_norm`` (the total norm before clipping), ``groups`` (each group's norm before
    clipping; BatchNorm affine parameters in ``<group>/bn``), and the iteration's losses.

    Args:
        file_name: the JSON-lines file, relative to the work dir.
        modules: names of modules (as in ``model.named_modules()``, e.g. ``"backbone"``,
            ``"roi_head.bbox_head"``) whose training outputs are recorded too: in ``outputs``, the
            root mean square and the largest absolute value of the first tensor each returns.
    """

    priority = "LOW"

    def __init__(self, file_name: str = "grad_norms.jsonl", modules: Sequence[str] = ()) -> None:
        self.file_name = file_name
        self.modules = tuple(modules)
        self._outputs: Dict[str, List[float]] = {}
        self._hooks: list = []
        self._groups: Dict[nn.Parameter, str] = {}
        self._last: Optional[dict] = None
        self._handle = None
        self._file = None

    def before_train(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        self._groups = {}
        for mname, module in model.named_modules():
            is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
            for pname, p in module.named_parameters(recurse=False):
                group = layer_group(f"{mname}.{pname}" if mname else pname)
                self._groups[p] = f"{group}/bn" if is_bn else group
        named = dict(model.named_modules())
        for name in self.modules:
            if name not in named:
                raise KeyError(f"GradNormRecorderHook: the model has no module {name!r}")
            self._hooks.append(named[name].register_forward_hook(self._recorder(name)))
        optim_wrapper = runner.optim_wrapper
        self._handle = optim_wrapper.optimizer.register_step_pre_hook(self._on_step)
        self._message_hub = optim_wrapper.message_hub
        self._max_norm = float((optim_wrapper.clip_grad_kwargs or {}).get("max_norm", math.inf))
        self._file = open(osp.join(runner.work_dir, self.file_name), "a")

    def _recorder(self, name: str):
        def record(module, args, output) -> None:
            while isinstance(output, (tuple, list)) and output:
                output = output[0]
            if module.training and isinstance(output, torch.Tensor) and output.numel():
                t = output.detach().float()
                rms, peak = float(t.pow(2).mean().sqrt()), float(t.abs().max())
                self._outputs[name] = [round(rms, 5), round(peak, 5)]
        return record

    def _on_step(self, optimizer, args, kwargs) -> None:
        sq: Dict[str, float] = OrderedDict()
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = self._groups.get(p, "other")
                sq[g] = sq.get(g, 0.0) + float(torch.linalg.vector_norm(p.grad.detach(), 2) ** 2)
        total_after = math.sqrt(sum(sq.values()))
        # the wrapper clipped before this step: undo its scale so the groups show what backward gave
        total = total_after
        hub = self._message_hub
        if "train/grad_norm" in hub.log_scalars:
            total = float(hub.log_scalars["train/grad_norm"].current())
        scale = total / total_after if total_after > 0 and total > self._max_norm else 1.0
        self._last = dict(grad_norm=round(total, 5),
                          groups={k: round(math.sqrt(v) * scale, 5) for k, v in sq.items()},
                          lr=optimizer.param_groups[0]["lr"])

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._last is None or self._file is None:
            return
        rec = dict(iter=runner.iter, epoch=runner.epoch, **self._last)
        if self._outputs:
            rec["outputs"] = self._outputs
            self._outputs = {}
        if outputs:
            rec["losses"] = {k: round(float(v), 5) for k, v in outputs.items()}
        self._file.write(json.dumps(rec) + "\n")
        self._file.flush()
        self._last = None

    def after_train(self, runner) -> None:
        for h in [self._handle, *self._hooks]:
            if h is not None:
                h.remove()
        self._handle, self._hooks = None, []
        if self._file is not None:
            self._file.close()
            self._file = None


def summarise(path: str, every: int = 25) -> List[dict]:
    """Per window of ``every`` iterations: the max total norm and the max norm of each group."""
    rows: List[dict] = []
    with open(path) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    for start in range(0, len(recs), every):
        win = recs[start:start + every]
        groups: Dict[str, float] = {}
        for r in win:
            for k, v in r["groups"].items():
                groups[k] = max(groups.get(k, 0.0), v)
        rows.append(dict(iters=(win[0]["iter"], win[-1]["iter"]),
                         grad_norm=max(r["grad_norm"] for r in win), groups=groups))
    return rows
