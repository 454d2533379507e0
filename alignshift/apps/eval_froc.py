"""Evaluate saved predictions with the DeepLesion FROC protocol.

    python tools/eval_froc.py PREDICTIONS.json [--gt ANNOTATIONS.json] [--out-dir DIR] [--iou-thr 0.5]

PREDICTIONS is what ``tools/test.py --out`` writes (format ``alignshift-predictions/1``, defined in
``alignshift/evaluation/predictions.py``). With --gt, ground truth and thickness come from an
annotation file of ``tools/prepare_deeplesion.py`` instead (matched by file_name); its images
without predictions count as images with no detections, and are reported. Relative paths are
relative to the current folder. --out-dir must be new, empty or hold an earlier report of this tool
(which is replaced; nothing else there is touched).
"""

from __future__ import annotations

import os.path as osp
import sys

from alignshift.apps.cli import ArgumentParser, run_cli
from alignshift.apps.outputs import check_output_dir, claim_output_dir, record_outputs
from alignshift.errors import UsageError, UserError
from alignshift.evaluation import (
    format_froc_table,
    froc_breakdown,
    join_ground_truth,
    read_predictions,
    save_froc_report,
)

__all__ = ["TOOL", "cli", "main"]

TOOL = "eval_froc"
REPORT = ("froc_table.txt", "froc.png", "froc.json")


def main(argv=None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("predictions", help="predictions JSON of tools/test.py --out")
    ap.add_argument("--gt", help="annotation JSON of tools/prepare_deeplesion.py")
    ap.add_argument("--iou-thr", type=float, default=0.5, help="IoU for a hit, in (0, 1]")
    ap.add_argument("--out-dir", help="write froc_table.txt, froc.png and froc.json here")
    ap.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    args = ap.parse_args(argv)
    if not 0 < args.iou_thr <= 1:
        raise UsageError(f"--iou-thr must be in (0, 1], got {args.iou_thr}")
    if args.out_dir:  # new, empty or an earlier report of this tool, checked before any work
        check_output_dir(args.out_dir, TOOL)
    recs = read_predictions(args.predictions)
    if args.gt:
        recs, without = join_ground_truth(recs, args.gt)
        if without:
            print(f"note: {without} images of {args.gt} have no predictions (counted as no detections)")
    else:
        missing = [i for i, r in enumerate(recs) if r.gt is None]
        if missing:
            raise UsageError(f"{args.predictions}: {len(missing)} images have no 'gt_boxes' "
                             f"(e.g. images[{missing[0]}]); pass the annotation file with --gt")
    if sum(len(r.gt) for r in recs) == 0:
        raise UserError(f"{args.gt or args.predictions}: no ground-truth boxes in any of its "
                        f"{len(recs)} images; sensitivity is undefined")
    res = froc_breakdown([r.pred for r in recs], [r.gt for r in recs], [r.thickness for r in recs],
                         iou_thr=args.iou_thr)
    title = f"DeepLesion FROC (sensitivity %) - {args.predictions}"
    if args.out_dir:
        claim_output_dir(args.out_dir, TOOL, force=True)  # replaces only an earlier report of ours
        record_outputs(args.out_dir, TOOL, REPORT)
        print(save_froc_report(res, args.out_dir, title))
        print(f"wrote {', '.join(REPORT)} to {osp.abspath(args.out_dir)}")
    else:
        print(format_froc_table(res, title=title))
    return 0


def cli() -> int:
    """The console script ``alignshift-eval-froc``."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
