#!/usr/bin/env python
"""Train a detector (mmdet's tools/train.py CLI).

    python tools/train.py configs/deeplesion/fasterrcnn_densenet_alignshift_7slice.py \
        [--work-dir DIR] [--resume [CHECKPOINT]] [--amp] [--cfg-options k=v ...] [--launcher pytorch]
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from any folder

import torch  # noqa: E402

from tools._cli import build_runner, load_config, parse_with_common_args  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train a detector")
    p.add_argument("config", help="train config file path")
    p.add_argument("--work-dir", help="the dir to save logs and models")
    p.add_argument("--amp", action="store_true", default=False,
                   help="enable automatic-mixed-precision training (needs a GPU)")
    p.add_argument("--auto-scale-lr", action="store_true", help="enable automatically scaling LR")
    p.add_argument("--resume", nargs="?", type=str, const="auto",
                   help="resume from the given checkpoint, or from the latest one in the work dir "
                        "when no path is given")
    return parse_with_common_args(p, argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args)
    if args.amp:
        if not torch.cuda.is_available():
            sys.exit("--amp needs a CUDA GPU (mmengine's AmpOptimWrapper); none is available")
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.loss_scale = "dynamic"
    if args.auto_scale_lr:
        if "auto_scale_lr" not in cfg or "base_batch_size" not in cfg.auto_scale_lr:
            sys.exit("--auto-scale-lr needs auto_scale_lr.base_batch_size in the config")
        cfg.auto_scale_lr.enable = True
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            sys.exit(f"--resume: checkpoint {args.resume} does not exist")
        cfg.resume, cfg.load_from = True, args.resume
    build_runner(cfg).train()


if __name__ == "__main__":
    main()
