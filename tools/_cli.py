"""Shared set-up of tools/train.py and tools/test.py (mmdet-style CLI)."""

from __future__ import annotations

import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def load_config(args) -> Config:
    """Config with --cfg-options merged, the launcher set and the work dir resolved."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir", None) is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
    for key in ("val_evaluator", "test_evaluator"):  # FROC table, plot and JSON go to the work dir
        ev = cfg.get(key)
        if isinstance(ev, dict) and ev.get("type") == "DeepLesionFROCMetric":
            ev.setdefault("out_dir", cfg.work_dir)
    return cfg


def build_runner(cfg: Config) -> Runner:
    return RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)


def parse_with_common_args(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Add the options train and test share (as mmdet's tools do), parse, export LOCAL_RANK."""
    p.add_argument("--cfg-options", nargs="+", action=DictAction,
                   help="override config settings, e.g. train_cfg.max_epochs=2")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                   help="job launcher")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = p.parse_args(argv)
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    return args
