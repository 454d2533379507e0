"""Compare two detectors on the same test split: the difference in sensitivity, with a paired test.

    python tools/compare_froc.py A.json B.json [--gt ANNOTATIONS.json] [--labels A B]
        [--breakdown type,size,interval] [--bootstrap 1000] [--seed 0] [--level 0.95]
        [--keep-noisy] [--criterion iou|iobb] [--iou-thr 0.5] [--avg paper|mp3d]
        [--size-bins 10,20,30,50] [--interval-bins 1,2,3] [--out-dir DIR]

A and B are predictions files of ``tools/test.py --out`` on the same images. With --gt, ground
truth, thickness, patients and lesion fields come from an annotation file of
``tools/prepare_deeplesion.py`` (matched by file_name) for both. Reported for All / Thin / Thick
and every group of the requested breakdowns: A - B at each FP rate and in Avg., its percentile
interval over paired resamples of the patients (each resample draws the patients once and
evaluates both detectors on it) and a two-sided p-value of no difference. --out-dir writes the
tables as text and markdown and the JSON (froc_compare.{txt,md,json}); it must be new, empty or
hold an earlier output of this tool (which is replaced; nothing else there is touched). Relative
paths are relative to the current folder.
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
from alignshift.errors import UsageError
from alignshift.evaluation import compare, load_evalset, save_comparison

__all__ = ["HINTS", "TOOL", "cli", "main"]

TOOL = "compare_froc"
STEM = "froc_compare"
OUTPUTS = tuple(f"{STEM}.{e}" for e in ("txt", "md", "json"))


def main(argv=None) -> int:
    ap = ArgumentParser(prog="compare_froc.py", description=__doc__.splitlines()[0])
    ap.add_argument("a", metavar="A.json", help="predictions of detector A (tools/test.py --out)")
    ap.add_argument("b", metavar="B.json", help="predictions of detector B on the same images")
    ap.add_argument("--gt", help="annotation JSON of tools/prepare_deeplesion.py")
    ap.add_argument("--labels", nargs=2, metavar=("A", "B"),
                    help="names of the two detectors in the tables (default: the file names)")
    add_froc_options(ap, "intervals and p-values")
    ap.add_argument("--out-dir", help="write froc_compare.txt, .md and .json here")
    ap.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    args = ap.parse_args(argv)
    protocol = protocol_from_args(args)
    check_breakdown(args)
    if osp.abspath(args.a) == osp.abspath(args.b):
        raise UsageError(f"A and B are the same file ({args.a}); give the predictions of two detectors")
    if args.out_dir:
        check_output_dir(args.out_dir, TOOL)
    ea, without_a = load_evalset(args.a, args.gt)
    eb, without_b = load_evalset(args.b, args.gt)
    labels = tuple(args.labels) if args.labels else \
        tuple(osp.splitext(osp.basename(p))[0] for p in (args.a, args.b))
    if labels[0] == labels[1] and not args.labels:  # a/preds.json and b/preds.json
        labels = ("A", "B")
    notes = []
    for path, n in ((args.a, without_a), (args.b, without_b)):
        if n:
            notes.append(f"note: {n} images of {args.gt} have no predictions in {path} (counted as "
                         "images without detections)")
    n_resamples = bootstrap_resamples(args, ea.patient is not None, ea.source, notes)
    cmp = compare(ea, eb, protocol, args.breakdown, n_resamples, args.seed, args.level, labels,
                  args.size_bins, args.interval_bins)
    cmp.notes += [n.replace("no confidence intervals", "no intervals or p-values") for n in notes]
    print(cmp.format_text())
    if args.out_dir:
        claim_output_dir(args.out_dir, TOOL, force=True)  # replaces only an earlier output of ours
        record_outputs(args.out_dir, TOOL, OUTPUTS)
        names = save_comparison(cmp, args.out_dir, STEM)
        print(f"wrote {', '.join(names)} to {osp.abspath(args.out_dir)}")
    return 0


def cli() -> int:
    """The console script ``alignshift-compare-froc``."""
    return run_cli(main, hints=HINTS)


if __name__ == "__main__":
    sys.exit(cli())
