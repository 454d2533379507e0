"""The FROC options that ``eval_froc``, ``compare_froc`` and ``test`` share.

``--breakdown``, ``--bootstrap``, ``--seed``, ``--level`` and the protocol options (``--keep-noisy``,
``--criterion``, ``--iou-thr``, ``--avg``, ``--size-bins``, ``--interval-bins``), parsed into the
arguments of :func:`alignshift.evaluation.evaluate` and :func:`alignshift.evaluation.compare`.
"""

from __future__ import annotations

import argparse
from typing import List, Tuple

from ..errors import UsageError, UserError
from ..evaluation.breakdown import (
    DEFAULT_INTERVAL_BINS_MM,
    DEFAULT_SIZE_BINS_MM,
    make_groupings,
    parse_breakdown,
)
from ..evaluation.protocol import FROCProtocol

__all__ = ["AVG_OPTIONS", "DEFAULT_RESAMPLES", "HINTS", "add_breakdown_option", "add_bootstrap_options",
           "add_froc_options", "add_protocol_options", "bins", "bootstrap_resamples", "check_breakdown",
           "protocol_from_args"]

DEFAULT_RESAMPLES = 1000
AVG_OPTIONS = {"paper": "0.5-4", "mp3d": "mp3d"}  # --avg -> FROCProtocol.avg

# the core's error fields -> the options that supply them
HINTS = {"gt_boxes": "pass the annotation file with --gt",
         "patient": "pass the annotation file of tools/prepare_deeplesion.py with --gt (it names each "
                    "image's patient), or --bootstrap 0",
         "lesion_type": "pass the annotation file with --gt (it carries each lesion's type)",
         "diameters_mm": "pass the annotation file with --gt (it carries each lesion's diameters)",
         "noisy": "pass annotations prepared with --include-noisy via --gt"}


def _edges(text: str) -> Tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers in mm, got {text!r}") from None


def bins(text: str) -> Tuple[float, ...]:
    """``"10,20,30,50"`` -> ``(10.0, 20.0, 30.0, 50.0)`` (an argparse ``type``)."""
    return _edges(text)


def add_breakdown_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--breakdown", default=None, metavar="NAMES",
                    help="groupings to report, any of type,size,interval (comma-separated); "
                         "NAME:GROUP reports one group, e.g. type:liver or interval:>3")


def add_bootstrap_options(ap: argparse.ArgumentParser, what: str = "intervals") -> None:
    ap.add_argument("--bootstrap", type=int, default=None, metavar="N",
                    help=f"patient resamples for the {what} (0: none; default {DEFAULT_RESAMPLES} "
                         "where every image's patient is known)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    ap.add_argument("--level", type=float, default=0.95, help="coverage of the intervals, in (0, 1)")


def add_protocol_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--keep-noisy", action="store_true",
                    help="count the lesions DL_info.csv marks Possibly_noisy (needs annotations "
                         "prepared with --include-noisy); default: excluded, as published")
    ap.add_argument("--criterion", choices=["iou", "iobb"], default="iou",
                    help="hit criterion: IoU, or IoBB (intersection over the detected box)")
    ap.add_argument("--iou-thr", type=float, default=0.5, help="overlap a hit needs, in (0, 1]")
    ap.add_argument("--avg", choices=list(AVG_OPTIONS), default="paper",
                    help="Avg.: mean at 0.5, 1, 2, 4 FPs per image (paper) or at 0.5, 1, 2, 3, 4, 8 "
                         "(mp3d)")
    ap.add_argument("--size-bins", type=bins, default=DEFAULT_SIZE_BINS_MM, metavar="MM,MM,...",
                    help="bin edges of the size breakdown (long diameter, mm)")
    ap.add_argument("--interval-bins", type=bins, default=DEFAULT_INTERVAL_BINS_MM, metavar="MM,MM,...",
                    help="bin edges of the interval breakdown (slice interval, mm)")


def add_froc_options(ap: argparse.ArgumentParser, what: str = "intervals") -> None:
    """Every option of this module."""
    add_breakdown_option(ap)
    add_bootstrap_options(ap, what)
    add_protocol_options(ap)


def protocol_from_args(args: argparse.Namespace) -> FROCProtocol:
    """The :class:`FROCProtocol` of the options; a bad value is a :class:`UsageError` naming its option."""
    if not 0 < args.iou_thr <= 1:
        raise UsageError(f"--iou-thr must be in (0, 1], got {args.iou_thr}")
    return FROCProtocol(noisy="kept" if args.keep_noisy else "excluded", criterion=args.criterion,
                        iou_thr=args.iou_thr, avg=AVG_OPTIONS[args.avg])


def check_breakdown(args: argparse.Namespace) -> None:
    """``--breakdown``, ``--size-bins``, ``--interval-bins``, ``--bootstrap`` and ``--level``
    checked before any work (:class:`UsageError` naming the option)."""
    for opt, name, value in (("--size-bins", "size", args.size_bins),
                             ("--interval-bins", "interval", args.interval_bins)):
        try:
            make_groupings([name], size_bins=value, interval_bins=value)
        except UserError as e:
            raise UsageError(f"{opt}: {e}") from None
    try:
        spec = parse_breakdown(args.breakdown)
        groupings = {g.name: g for g in make_groupings(list(dict.fromkeys(n for n, _ in spec)),
                                                       args.size_bins, args.interval_bins)}
    except UserError as e:
        raise UsageError(f"--breakdown {args.breakdown}: {e}") from None
    for name, group in spec:
        if group is not None and group not in groupings[name].labels:
            raise UsageError(f"--breakdown {args.breakdown}: unknown group {group!r} of breakdown {name}: "
                             f"expected one of {', '.join(groupings[name].labels)}")
    if args.bootstrap is not None and args.bootstrap < 0:
        raise UsageError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if not 0 < args.level < 1:
        raise UsageError(f"--level must be in (0, 1), got {args.level}")


def bootstrap_resamples(args: argparse.Namespace, patients_known: bool, source: str,
                        notes: List[str]) -> int:
    """The number of resamples: ``--bootstrap``, else :data:`DEFAULT_RESAMPLES` when every image's
    patient is known, else 0 with a note in ``notes`` saying why there are no intervals."""
    if args.bootstrap is not None:
        if args.bootstrap == 0:
            notes.append("no confidence intervals (--bootstrap 0)")
        return args.bootstrap
    if patients_known:
        return DEFAULT_RESAMPLES
    notes.append(f"no confidence intervals: {source} does not name every image's patient (pass the "
                 "annotation file of tools/prepare_deeplesion.py with --gt)")
    return 0
