"""``tools/test.py`` / ``alignshift-test``: test a detector and report DeepLesion FROC (mmdet's CLI).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out predictions.json]
        [--show-dir overlays] [--breakdown type,size,interval] [--bootstrap 1000] [--seed 0]
        [--tta] [--cfg-options k=v ...] [--launcher pytorch]

Relative paths (CONFIG, CHECKPOINT, --work-dir, --out, --show-dir) are relative to the current
folder. --out writes every prediction with its ground truth and thickness (format
``alignshift-predictions/1``, see alignshift/evaluation/predictions.py) for ``tools/eval_froc.py``.
--show-dir writes key-slice overlays (ground truth green, detections >= --score-thr red), at most
``default_hooks.visualization.max_images`` of them; the folder must be new, empty or hold earlier
overlays (which are replaced). The checkpoint must fit the config's model; ``--cfg-options
checkpoint_strict=False`` loads a partial match. Inputs and outputs are checked before the model is
built.

The FROC report: the test evaluator (``DeepLesionFROCMetric``) reads the ground truth, patients and
lesion fields from the test split's annotation file (``data_root`` + ``ann_file`` of the test
dataset), and writes, beside the paper's table, ``froc_breakdown.{txt,md,json,png}``: All / Thin /
Thick and the --breakdown groups, each sensitivity with its patient-bootstrap interval (--bootstrap
resamples, default 1000 when the annotation file names every image's patient; 0 turns it off).
A --breakdown that the annotation file cannot serve (a missing field, a picked group without
lesions) stops before the test run. --tta runs each image as is and mirrored left-right and merges
the detections (``tta_model`` / ``tta_pipeline`` of the config when it has them, else
``mmdet_plugins.tta.enable_flip_tta``'s, derived from its test pipeline), as mmdet's ``--tta``.
"""

from __future__ import annotations

import argparse
import copy
import os.path as osp
import sys
from typing import Optional, Sequence

from ..errors import UsageError, UserError
from ..evaluation.breakdown import parse_breakdown
from ..fileio import ensure_writable_file
from .cli import ArgumentParser, add_runner_options, export_local_rank, run_cli
from .froc_options import DEFAULT_RESAMPLES, add_breakdown_option
from .messages import DATA_HINT
from .outputs import check_output_dir

__all__ = ["cli", "main", "parse_args"]

REWRITE = "write the annotations again with tools/prepare_deeplesion.py --force"
HINTS = {"data_root": DATA_HINT,
         "checkpoint_strict": "on the command line: --cfg-options checkpoint_strict=False",
         "patient": f"{REWRITE}, or pass --bootstrap 0",
         "lesion_type": REWRITE, "diameters_mm": REWRITE,
         "noisy": "write the annotations with tools/prepare_deeplesion.py --include-noisy"}
FROC_METRIC = "DeepLesionFROCMetric"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(prog="test.py", description="Test (and eval) a detector")
    p.add_argument("config", help="test config file path")
    p.add_argument("checkpoint", help="checkpoint file or http(s) URL (downloaded via torch.hub)")
    p.add_argument("--work-dir", help="the dir to save the evaluation metrics")
    p.add_argument("--out", help="write the predictions (JSON) to this file")
    p.add_argument("--show-dir", help="folder for detection overlays")
    p.add_argument("--score-thr", type=float, default=0.5, help="overlay score threshold")
    add_breakdown_option(p)
    p.add_argument("--bootstrap", type=int, default=None, metavar="N",
                   help=f"patient resamples for the intervals (0: none; default {DEFAULT_RESAMPLES} "
                        "where the annotation file names every image's patient)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    p.add_argument("--tta", action="store_true",
                   help="flip test-time augmentation (the config's tta_model and tta_pipeline)")
    add_runner_options(p)
    args = p.parse_args(argv)
    export_local_rank(args)
    return args


def _test_dataset(cfg) -> dict:
    ds = cfg.test_dataloader.dataset
    while "dataset" in ds:  # wrappers such as ConcatDataset / RepeatDataset
        ds = ds["dataset"]
    return ds


def configure_froc(cfg, args: argparse.Namespace) -> None:
    """Set the test evaluator's ``ann_file``, ``breakdown``, ``bootstrap`` and ``seed``.

    The annotation file is checked first: the bootstrap needs every image's patient (without them
    the default bootstrap is left out, with a note) and a breakdown its lesion fields.
    """
    from ..evaluation import evaluate
    from ..evaluation.evalset import ground_truth_evalset
    from ..evaluation.protocol import FROCProtocol

    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
    froc = [e for e in evaluators if e.get("type") == FROC_METRIC]
    if not froc:
        if args.breakdown or args.bootstrap:
            raise UsageError(f"--breakdown and --bootstrap need a test_evaluator of type {FROC_METRIC} "
                             f"in {args.config}")
        return
    ds = _test_dataset(cfg)
    ann = froc[0].get("ann_file") or osp.join(ds.get("data_root") or "", ds["ann_file"])
    data = ground_truth_evalset(ann)
    n_resamples = args.bootstrap
    if n_resamples is None:
        n_resamples = DEFAULT_RESAMPLES if data.patient is not None else 0
        if not n_resamples:
            print(f"note: no confidence intervals: {ann} does not name every image's patient "
                  f"({REWRITE} to add them)", flush=True)
    if n_resamples:
        data.require("patient", "the patient bootstrap")
    for e in froc:
        try:
            protocol = FROCProtocol(noisy=e.get("noisy", "excluded"))
        except ValueError:
            protocol = FROCProtocol()  # the metric names the bad value when it is built
        bins = {k: e[k] for k in ("size_bins", "interval_bins") if k in e}
        # a missing lesion field or a picked group without lesions stops here, before the test run
        if args.breakdown is not None:
            e.breakdown = args.breakdown
        evaluate(data, protocol, e.get("breakdown"), **bins)
        e.ann_file = e.get("ann_file") or ann
        e.bootstrap = n_resamples
        e.seed = args.seed


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
    if args.bootstrap is not None and args.bootstrap < 0:
        raise UsageError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    try:
        parse_breakdown(args.breakdown)
    except UserError as e:
        raise UsageError(f"--breakdown {args.breakdown}: {e}") from None
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.tta:
        from mmdet_plugins.tta import enable_flip_tta

        try:
            enable_flip_tta(cfg)
        except ValueError as e:
            raise UserError(f"--tta: {args.config}: {e}") from None
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
    configure_froc(cfg, args)
    # the model alone first: a checkpoint that does not fit stops here, before the runner writes logs
    # (with --tta, the detector inside the TTA wrapper, as the runner loads it)
    detector_cfg = cfg
    if args.tta:
        detector_cfg = copy.deepcopy(cfg)
        detector_cfg.model = detector_cfg.model.module
    check_checkpoint_matches(build_model(detector_cfg), cfg, cfg.load_from,
                             strict=bool(cfg.get(STRICT_KEY, True)))
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
