"""``tools/train.py`` / ``alignshift-train``: train a detector (mmdet's tools/train.py CLI).

    python tools/train.py configs/deeplesion/fasterrcnn_densenet_alignshift_7slice.py \\
        [--work-dir DIR] [--resume [CHECKPOINT]] [--amp] [--cfg-options k=v ...] [--launcher pytorch]

Relative paths are relative to the current folder. Before the model is built this checks the
config, the annotation files of the splits it trains and validates on ($DEEPLESION_ROOT), that the
work dir can be written, and fetches the ImageNet weights (``model.backbone.pretrained``, a URL or
a local file) so that an offline machine fails at once with a hint.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import re
import sys
from typing import Optional, Sequence

from ..errors import UsageError
from .cli import ArgumentParser, add_runner_options, export_local_rank, run_cli
from .messages import DATA_HINT, PRETRAINED_HINT

__all__ = ["cli", "main", "parse_args"]

HINTS = {"data_root": DATA_HINT, "pretrained": PRETRAINED_HINT,
         "checkpoint_strict": "on the command line: --cfg-options checkpoint_strict=False"}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(prog="train.py", description="Train a detector")
    p.add_argument("config", help="train config file path")
    p.add_argument("--work-dir", help="the dir to save logs and models")
    p.add_argument("--amp", action="store_true", default=False,
                   help="automatic mixed precision: float16 on a CUDA GPU, bfloat16 on a CPU")
    p.add_argument("--auto-scale-lr", action="store_true", help="enable automatically scaling LR")
    p.add_argument("--resume", nargs="?", type=str, const="auto",
                   help="resume from the given checkpoint, or from the latest one in the work dir "
                        "when no path is given")
    add_runner_options(p)
    args = p.parse_args(argv)
    export_local_rank(args)
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    import torch

    from mmdet_plugins.apis import build_runner, check_data, check_outputs, load_config, sniff_checkpoint

    if args.resume not in (None, "auto"):
        sniff_checkpoint(args.resume, "--resume checkpoint")
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.amp:  # float16 with a dynamic loss scale on CUDA, bfloat16 autocast on a CPU
        from mmdet_plugins.amp import enable_amp

        enable_amp(cfg, "cuda" if torch.cuda.is_available() else "cpu")
    if args.auto_scale_lr:
        if "auto_scale_lr" not in cfg or "base_batch_size" not in cfg.auto_scale_lr:
            raise UsageError("--auto-scale-lr needs auto_scale_lr.base_batch_size in the config")
        cfg.auto_scale_lr.enable = True
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, osp.abspath(args.resume)
    elif cfg.get("load_from"):
        sniff_checkpoint(cfg.load_from, "load_from checkpoint")
    check_outputs(cfg)
    loaders = ["train_dataloader"] + (["val_dataloader"] if cfg.get("val_cfg") else [])
    check_data(cfg, loaders)
    pretrained = (cfg.model.get("backbone") or {}).get("pretrained")
    if isinstance(pretrained, str):
        if re.match(r"^[a-z]+://", pretrained):
            from ..models.densenet import imagenet_weights_file

            imagenet_weights_file(pretrained)  # downloads once; offline: a one-line hint
        elif not osp.isfile(pretrained):
            raise UsageError(f"model.backbone.pretrained: {pretrained} does not exist")
        else:
            cfg.model.backbone.pretrained = osp.abspath(pretrained)
    print(f"work dir: {cfg.work_dir} (logs, checkpoints and the validation FROC go there)", flush=True)
    build_runner(cfg).train()
    if int(os.environ.get("RANK", "0")) == 0:  # only rank 0 writes them
        print(f"wrote checkpoints and logs to {cfg.work_dir}")
    return 0


def cli() -> int:
    """The console script ``alignshift-train``."""
    return run_cli(main, hints=HINTS)


if __name__ == "__main__":
    sys.exit(cli())
