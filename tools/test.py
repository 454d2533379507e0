#!/usr/bin/env python
"""Test a detector and report DeepLesion FROC (mmdet's tools/test.py CLI).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out predictions.json]
        [--show-dir overlays] [--cfg-options k=v ...] [--launcher pytorch]

--out writes every prediction with its ground truth and thickness (format
``alignshift-predictions/1``, see mmdet_plugins/metrics.py) for ``tools/eval_froc.py``.
--show-dir writes key-slice overlays (ground truth green, detections >= --score-thr red) under
the work dir.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from any folder


from tools._cli import build_runner, load_config, parse_with_common_args  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Test (and eval) a detector")
    p.add_argument("config", help="test config file path")
    p.add_argument("checkpoint", help="checkpoint file or http(s) URL (downloaded via torch.hub)")
    p.add_argument("--work-dir", help="the dir to save the evaluation metrics")
    p.add_argument("--out", help="write the predictions (JSON) to this file")
    p.add_argument("--show-dir", help="folder (under the work dir) for detection overlays")
    p.add_argument("--score-thr", type=float, default=0.5, help="overlay score threshold")
    return parse_with_common_args(p, argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    is_url = args.checkpoint.startswith(("http://", "https://"))
    if not is_url and not osp.isfile(args.checkpoint):
        sys.exit(f"checkpoint {args.checkpoint} does not exist")
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    if args.out:
        if not args.out.endswith(".json"):
            sys.exit(f"--out {args.out}: predictions are written as JSON, use a .json file name")
        cfg.test_evaluator.prediction_file = args.out
    if args.show_dir:
        vis = cfg.default_hooks.get("visualization")
        if vis is None or vis.get("type") != "DeepLesionVisualizationHook":
            sys.exit("--show-dir needs default_hooks.visualization of type "
                     "DeepLesionVisualizationHook in the config")
        vis.update(draw=True, out_dir=args.show_dir, score_thr=args.score_thr)
    build_runner(cfg).test()


if __name__ == "__main__":
    main()
