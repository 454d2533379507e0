"""Evaluate saved predictions with the DeepLesion FROC protocol: breakdowns and confidence intervals.

    python tools/eval_froc.py PREDICTIONS.json [--gt ANNOTATIONS.json] [--breakdown type,size,interval]
        [--bootstrap 1000] [--seed 0] [--level 0.95] [--keep-noisy] [--criterion iou|iobb]
        [--iou-thr 0.5] [--avg paper|mp3d] [--size-bins 10,20,30,50] [--interval-bins 1,2,3]
        [--out-dir DIR]

PREDICTIONS is what ``tools/test.py --out`` writes (format ``alignshift-predictions/1``, defined in
``alignshift/evaluation/predictions.py``). With --gt, ground truth, thickness, patients and lesion
fields come from an annotation file of ``tools/prepare_deeplesion.py`` instead (matched by
file_name); its images without predictions count as images with no detections, and are reported.
The console shows All / Thin / Thick and each requested breakdown, every sensitivity with its
patient-bootstrap interval, under a header naming the protocol options. --out-dir also writes the
paper's table and FROC curves (froc_table.txt, froc.png, froc.json) and the report as text,
markdown, JSON and a grouped bar chart (froc_breakdown.{txt,md,json,png}). Relative paths are
relative to the current folder. --out-dir must be new, empty or hold an earlier report of this tool
(which is replaced; nothing else there is touched).
"""

from __future__ import annotations

import os.path as osp
import sys

from alignshift.apps.cli import ArgumentParser, run_cli
from alignshift.apps.froc_options import (
    HINTS,
    add_froc_options,
    bootstrap_resamples,
    check_breakdown,
    protocol_from_args,
)
from alignshift.apps.outputs import check_output_dir, claim_output_dir, record_outputs
from alignshift.evaluation import evaluate, froc_breakdown, load_evalset, save_froc_report, save_report

__all__ = ["HINTS", "TOOL", "cli", "main"]

TOOL = "eval_froc"
STEM = "froc_breakdown"
REPORT = ("froc_table.txt", "froc.png", "froc.json",
          *(f"{STEM}.{ext}" for ext in ("txt", "md", "json", "png")))


def main(argv=None) -> int:
    ap = ArgumentParser(prog="eval_froc.py", description=__doc__.splitlines()[0])
    ap.add_argument("predictions", help="predictions JSON of tools/test.py --out")
    ap.add_argument("--gt", help="annotation JSON of tools/prepare_deeplesion.py")
    add_froc_options(ap)
    ap.add_argument("--out-dir", help="write the tables, JSON and plots here")
    ap.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    args = ap.parse_args(argv)
    protocol = protocol_from_args(args)
    check_breakdown(args)
    if args.out_dir:  # new, empty or an earlier report of this tool, checked before any work
        check_output_dir(args.out_dir, TOOL)
    data, without = load_evalset(args.predictions, args.gt)
    notes = []
    if without:
        notes.append(f"note: {without} images of {args.gt} have no predictions in {args.predictions} "
                     "(counted as images without detections)")
    n_resamples = bootstrap_resamples(args, data.patient is not None, data.source, notes)
    report = evaluate(data, protocol, args.breakdown, n_resamples, args.seed, args.level,
                      args.size_bins, args.interval_bins)
    report.notes += notes
    print(report.format_text())
    if args.out_dir:
        # the paper's table and curves, under the same protocol
        sub = data.for_noisy(protocol.noisy)
        res = froc_breakdown(sub.pred, sub.gt, sub.thickness, iou_thr=protocol.iou_thr,
                             inclusive=protocol.inclusive, criterion=protocol.criterion)
        claim_output_dir(args.out_dir, TOOL, force=True)  # replaces only an earlier report of ours
        names = ["froc_table.txt", "froc.png", "froc.json"]
        record_outputs(args.out_dir, TOOL, REPORT)
        save_froc_report(res, args.out_dir, f"DeepLesion FROC (sensitivity %) - {args.predictions}")
        names += save_report(report, args.out_dir, STEM)
        print(f"wrote {', '.join(names)} to {osp.abspath(args.out_dir)}")
    return 0


def cli() -> int:
    """The console script ``alignshift-eval-froc``."""
    return run_cli(main, hints=HINTS)


if __name__ == "__main__":
    sys.exit(cli())
