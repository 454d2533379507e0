"""What the train and test tools do with MMEngine: load a config, check it, build the runner.

Everything a run needs is checked here before a model or a dataset is built: the config, the
annotation files and image folders of the splits it reads, that every output can be written, and
that a checkpoint fits the model. A mistake raises :class:`alignshift.errors.UserError` naming the
file or the config key (the tools print it as one line).
"""

from __future__ import annotations

import os
import os.path as osp
import re
import sys
import zipfile
from typing import Iterable, Optional

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from alignshift.errors import UsageError, UserError
from alignshift.fileio import ensure_writable_dir

__all__ = ["STRICT_KEY", "build_model", "build_runner", "check_checkpoint_matches", "check_data",
           "check_outputs", "load_config", "sniff_checkpoint"]


def load_config(config: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                launcher: str = "none") -> Config:
    """The config with ``cfg_options`` merged, the launcher set and the work dir resolved (absolute).

    The work dir is ``work_dir``, else the config's, else ``work_dirs/<config name>``.
    """
    if not osp.isfile(config):
        raise UsageError(f"config {config} does not exist (relative paths are relative to the "
                         f"current folder, {os.getcwd()})")
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get("work_dir", None) is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(config))[0])
    cfg.work_dir = osp.abspath(cfg.work_dir)
    for key in ("val_evaluator", "test_evaluator"):  # FROC table, plot and JSON go to the work dir
        ev = cfg.get(key)
        if isinstance(ev, dict) and ev.get("type") == "DeepLesionFROCMetric":
            ev.setdefault("out_dir", cfg.work_dir)
            if ev.get("out_dir"):  # relative to the current folder, like every path a user gives
                ev["out_dir"] = osp.abspath(ev["out_dir"])
    return cfg


def _datasets(dataset: dict) -> Iterable[dict]:
    """The leaf dataset configs under wrappers (RepeatDataset, ConcatDataset, ...)."""
    if "datasets" in dataset:
        for d in dataset["datasets"]:
            yield from _datasets(d)
    elif "dataset" in dataset:
        yield from _datasets(dataset["dataset"])
    else:
        yield dataset


def check_data(cfg: Config, loaders: Iterable[str]) -> None:
    """Every annotation file and image folder the ``loaders`` read exists, or a one-line hint."""
    for key in loaders:
        loader = cfg.get(key)
        if not loader or "dataset" not in loader:
            continue
        for ds in _datasets(loader["dataset"]):
            root = ds.get("data_root") or ""
            ann = ds.get("ann_file")
            if ann:
                path = ann if osp.isabs(ann) else osp.join(root, ann)
                if not osp.isfile(path):
                    raise UserError(f"{key}: annotation file {osp.abspath(path)} does not exist",
                                    field="data_root")
            img = (ds.get("data_prefix") or {}).get("img")
            if img is not None:
                path = img if osp.isabs(img) else osp.join(root, img)
                if not osp.isdir(path):
                    raise UserError(f"{key}: image folder {osp.abspath(path)} does not exist",
                                    field="data_root")


def check_outputs(cfg: Config) -> None:
    """The work dir and the evaluators' output folders can be written."""
    ensure_writable_dir(cfg.work_dir, "work dir")
    for key in ("val_evaluator", "test_evaluator"):
        ev = cfg.get(key)
        if isinstance(ev, dict) and ev.get("out_dir"):
            ensure_writable_dir(ev["out_dir"], f"{key}.out_dir")


def sniff_checkpoint(path: str, what: str = "checkpoint") -> None:
    """Refuse a file that is not a PyTorch checkpoint at all (cheap: its first bytes)."""
    if path.startswith(("http://", "https://")):
        return
    if not osp.exists(path):
        raise UsageError(f"{what} {path} does not exist")
    if not osp.isfile(path):
        raise UsageError(f"{what} {path} is not a file")
    with open(path, "rb") as f:
        head = f.read(2)
    # torch.save writes a zip archive (torch >= 1.6) or, in the legacy format, a pickle
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":
        raise UserError(f"{what} {path} is not a PyTorch checkpoint (neither a torch.save zip archive "
                        "nor a pickle); give the .pth file that tools/train.py writes")


def build_runner(cfg: Config) -> Runner:
    return RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)


STRICT_KEY = "checkpoint_strict"  # --cfg-options checkpoint_strict=False loads a partial match


def build_model(cfg: Config):
    """The config's model alone (for checks before the runner, which writes logs, is built).

    A bad value in the config's model section is a :class:`UserError` naming the config.
    """
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmdet_plugins  # noqa: F401  (registers the project's modules)

    init_default_scope(cfg.get("default_scope", "mmdet"))
    try:
        return MODELS.build(cfg.model)
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{cfg.filename}: cannot build the model: {err}") from None


def check_checkpoint_matches(model, cfg: Config, path: str, strict: bool = True) -> None:
    """The checkpoint's weights fit ``model``: same names, same shapes.

    A mismatch raises a one-line :class:`UserError` naming the first differing keys
    (``field="checkpoint_strict"``), unless ``strict`` is False (the config key
    ``checkpoint_strict=False``), when a warning says so and the runner loads the matching part, as
    mmengine does.
    """
    from mmengine.runner.checkpoint import _load_checkpoint

    from .runner import checkpoint_safe_globals

    try:
        with checkpoint_safe_globals(bool(cfg.get("trusted_checkpoints", False))):
            ckpt = _load_checkpoint(path, map_location="cpu")
    except RuntimeError as e:
        if "trusted_checkpoints" in str(e):
            raise UserError(f"checkpoint {path}: " + str(e).split("\n")[-1]) from None
        raise UserError(f"checkpoint {path} is not a PyTorch checkpoint that can be read "
                        f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    except (OSError, EOFError, ValueError) as e:
        raise UserError(f"checkpoint {path} cannot be read: {e}") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise UserError(f"checkpoint {path} holds no model weights (no 'state_dict')")
    state = {re.sub(r"^module\.", "", k): v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or shapes):
        return
    parts = []
    for what, keys in (("shape mismatches (checkpoint vs model)", shapes),
                       ("missing from the checkpoint", missing), ("not in the model", unexpected)):
        if keys:
            parts.append(f"{len(keys)} {what}, e.g. {', '.join(keys[:3])}")
    msg = f"checkpoint {path} does not fit the model of {cfg.filename}: " + "; ".join(parts)
    if strict:
        raise UserError(msg + f". Is it the checkpoint of this config? {STRICT_KEY}=False in the config "
                        "loads the matching part anyway", field=STRICT_KEY)
    print(f"warning: {msg} ({STRICT_KEY}=False: loading the matching part)", file=sys.stderr, flush=True)
