#!/usr/bin/env python
"""Test a detector and report DeepLesion FROC (mmdet's tools/test.py CLI).

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

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from any folder

from alignshift.cli import ArgumentParser, UsageError, run_cli  # noqa: E402
from alignshift.fsutil import check_output_dir, ensure_writable_file  # noqa: E402
from mmdet_plugins.hooks import OVERLAY_TOOL  # noqa: E402
from tools._cli import (  # noqa: E402
    STRICT_KEY,
    build_model,
    build_runner,
    check_checkpoint_matches,
    check_data,
    check_outputs,
    load_config,
    parse_with_common_args,
    sniff_checkpoint,
)


def parse_args(argv=None):
    p = ArgumentParser(description="Test (and eval) a detector")
    p.add_argument("config", help="test config file path")
    p.add_argument("checkpoint", help="checkpoint file or http(s) URL (downloaded via torch.hub)")
    p.add_argument("--work-dir", help="the dir to save the evaluation metrics")
    p.add_argument("--out", help="write the predictions (JSON) to this file")
    p.add_argument("--show-dir", help="folder for detection overlays")
    p.add_argument("--score-thr", type=float, default=0.5, help="overlay score threshold")
    return parse_with_common_args(p, argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sniff_checkpoint(args.checkpoint)
    if args.out and not args.out.endswith(".json"):
        raise UsageError(f"--out {args.out}: predictions are written as JSON, use a .json file name")
    cfg = load_config(args)
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


if __name__ == "__main__":
    sys.exit(run_cli(main))
