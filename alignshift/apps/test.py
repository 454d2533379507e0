"""``tools/test.py`` / ``alignshift-test``: test a detector and report DeepLesion FROC (mmdet's CLI).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out predictions.json]
        [--show-dir overlays] [--cfg-options k=v ...] [--launcher pytorch]

Relative paths (CONFIG, CHECKPOINT, --work-dir, --out, --show-dir) are relative to the current
folder. --out writes every prediction with its ground truth and thickness (format
``alignshift-predictions/1``, see alignshift/evaluation/predictions.py) for ``tools/eval_froc.py``.
--show-dir writes key-slice overlays (ground truth green, detections >= --score-thr red), at most
``default_hooks.visualization.max_images`` of them; the folder must be new, empty or hold earlier
overlays (which are replaced). The checkpoint must fit the config's model; ``--cfg-options
checkpoint_strict=False`` loads a partial match. Inputs and outputs are checked before the model is
built.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

from ..errors import UsageError
from ..fileio import ensure_writable_file
from .cli import ArgumentParser, add_runner_options, export_local_rank, run_cli
from .messages import DATA_HINT
from .outputs import check_output_dir

__all__ = ["cli", "main", "parse_args"]

HINTS = {"data_root": DATA_HINT,
         "checkpoint_strict": "on the command line: --cfg-options checkpoint_strict=False"}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(prog="test.py", description="Test (and eval) a detector")
    p.add_argument("config", help="test config file path")
    p.add_argument("checkpoint", help="checkpoint file or http(s) URL (downloaded via torch.hub)")
    p.add_argument("--work-dir", help="the dir to save the evaluation metrics")
    p.add_argument("--out", help="write the predictions (JSON) to this file")
    p.add_argument("--show-dir", help="folder for detection overlays")
    p.add_argument("--score-thr", type=float, default=0.5, help="overlay score threshold")
    add_runner_options(p)
    args = p.parse_args(argv)
    export_local_rank(args)
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from mmdet_plugins.apis import (
        STRICT_KEY,
        build_model,
        build_runner,
        check_checkpoint_matches,
        check_data,
        check_outputs,
        load_config,
        sniff_checkpoint,
    )
    from mmdet_plugins.hooks import OVERLAY_TOOL

    sniff_checkpoint(args.checkpoint)
    if args.out and not args.out.endswith(".json"):
        raise UsageError(f"--out {args.out}: predictions are written as JSON, use a .json file name")
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    is_url = args.checkpoint.startswith(("http://", "https://"))
    cfg.load_from = args.checkpoint if is_url else osp.abspath(args.checkpoint)
    backbone = cfg.model.get("backbone") or {}
    if backbone.get("pretrained"):  # the checkpoint brings every weight: no ImageNet download
        backbone["pretrained"] = None
    check_outputs(cfg)
    if args.out:
        out = ensure_writable_file(args.out, "--out")
        cfg.test_evaluator.prediction_file = out
    if args.show_dir:
        vis = cfg.default_hooks.get("visualization")
        if vis is None or vis.get("type") != "DeepLesionVisualizationHook":
            raise UsageError("--show-dir needs default_hooks.visualization of type "
                             "DeepLesionVisualizationHook in the config")
        show_dir = osp.abspath(args.show_dir)
        check_output_dir(show_dir, OVERLAY_TOOL)
        vis.update(draw=True, out_dir=show_dir, score_thr=args.score_thr)
    check_data(cfg, ["test_dataloader"])
    # the model alone first: a checkpoint that does not fit stops here, before the runner writes logs
    check_checkpoint_matches(build_model(cfg), cfg, cfg.load_from, strict=bool(cfg.get(STRICT_KEY, True)))
    runner = build_runner(cfg)
    runner.test()
    wrote = [f"FROC table, plot and JSON in {cfg.test_evaluator.get('out_dir', cfg.work_dir)}"]
    if args.out:
        wrote.append(f"predictions in {cfg.test_evaluator.prediction_file}")
    if args.show_dir:
        wrote.append(f"overlays in {show_dir}")
    print("wrote " + "; ".join(wrote) + f" (log in {cfg.work_dir})")
    return 0


def cli() -> int:
    """The console script ``alignshift-test``."""
    return run_cli(main, hints=HINTS)


if __name__ == "__main__":
    sys.exit(cli())
