"""Shared set-up of tools/train.py and tools/test.py (mmdet-style CLI) and their fail-fast checks.

Everything a run needs is checked here before a model or a dataset is built: the config, the
annotation files and image folders of the splits it reads, and that every output can be written.
A mistake raises :class:`alignshift.cli.UserError` (one line, see ``alignshift/cli.py``).
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import zipfile
from typing import Iterable, Optional

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from alignshift.cli import UsageError, UserError
from alignshift.data.deeplesion import DATA_HINT
from alignshift.fsutil import ensure_writable_dir


def load_config(args) -> Config:
    """Config with --cfg-options merged, the launcher set and the work dir resolved (absolute)."""
    if not osp.isfile(args.config):
        raise UsageError(f"config {args.config} does not exist (relative paths are relative to the "
                         f"current folder, {os.getcwd()})")
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir", None) is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
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
                    raise UserError(f"{key}: annotation file {osp.abspath(path)} does not exist. "
                                    + DATA_HINT)
            img = (ds.get("data_prefix") or {}).get("img")
            if img is not None:
                path = img if osp.isabs(img) else osp.join(root, img)
                if not osp.isdir(path):
                    raise UserError(f"{key}: image folder {osp.abspath(path)} does not exist. " + DATA_HINT)


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


def parse_with_common_args(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Add the options train and test share (as mmdet's tools do), parse, export LOCAL_RANK."""
    p.add_argument("--cfg-options", nargs="+", action=DictAction,
                   help="override config settings, e.g. train_cfg.max_epochs=2")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                   help="job launcher")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)
    p.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    args = p.parse_args(argv)
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    return args


def abspath_or_none(path: Optional[str]) -> Optional[str]:
    return None if path is None else osp.abspath(path)


STRICT_KEY = "checkpoint_strict"  # --cfg-options checkpoint_strict=False loads a partial match


def build_model(cfg: Config):
    """The config's model alone (for checks before the runner, which writes logs, is built)."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.get("default_scope", "mmdet"))
    return MODELS.build(cfg.model)


def check_checkpoint_matches(model, cfg: Config, path: str, strict: bool = True) -> None:
    """The checkpoint's weights fit ``model``: same names, same shapes.

    A mismatch raises a one-line :class:`UserError` naming the first differing keys, unless
    ``strict`` is False (``--cfg-options checkpoint_strict=False``), when a warning says so and the
    runner loads the matching part, as mmengine does.
    """
    import re
    import sys

    from mmengine.runner.checkpoint import _load_checkpoint

    from mmdet_plugins.runner import checkpoint_safe_globals

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
        raise UserError(msg + f". Is it the checkpoint of this config? --cfg-options {STRICT_KEY}=False "
                        "loads the matching part anyway")
    print(f"warning: {msg} ({STRICT_KEY}=False: loading the matching part)", file=sys.stderr, flush=True)
