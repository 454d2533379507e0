"""Detect lesions in a CT volume (NIfTI, NRRD, MHA, DICOM series) with a trained detector.

``tools/infer_volume.py``, also the console script ``alignshift-infer``:

    python tools/infer_volume.py VOLUME CONFIG CHECKPOINT [--out DIR] [--device cpu|cuda]
        [--slices a:b] [--score-thr 0.5] [--series UID] [--resample] [--save-mask]
        [--batch-size N] [--list-series] [--force]

The detector is built from CONFIG (mmengine / mmdet, with this project's ``mmdet_plugins``) and
loaded from CHECKPOINT. The slices are prepared as the config's test pipeline prepares DeepLesion
(number of slices, neighbour interval and interpolation, HU window, keep-ratio Resize; the model's
data preprocessor normalises), with the scan's own slice interval as the thickness. Writes
``detections.json``, ``lesions.csv`` and ``overlays/`` (and with --save-mask a label volume in the
input's geometry) to --out. See docs/inference.md for the formats and the geometry conventions.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import time
from typing import List, Optional, Sequence

from alignshift.apps.cli import ArgumentParser, run_cli
from alignshift.apps.outputs import claim_output_dir, record_outputs
from alignshift.errors import UsageError, UserError
from alignshift.inference import (
    detect_volume,
    list_dicom_series,
    mask_filename,
    read_volume,
    write_detections_json,
    write_lesions_csv,
    write_mask,
    write_overlays,
)

__all__ = ["TOOL", "cli", "main", "parse_args", "parse_slices"]

TOOL = "infer_volume"
HINTS = {"series": "choose one with --series UID (--list-series lists them)",
         "resample": "rerun with --resample"}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction

    p = ArgumentParser(prog="infer_volume.py", description="Detect lesions in a CT volume")
    p.add_argument("volume", help="a volume file (.nii, .nii.gz, .nrrd, .mha, ...) or a DICOM series folder")
    p.add_argument("config", nargs="?", help="the detector's config file")
    p.add_argument("checkpoint", nargs="?", help="the detector's checkpoint (.pth)")
    p.add_argument("--out", metavar="DIR",
                   help="output folder; when not given, work_dirs/infer/<volume name>")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the detector runs")
    p.add_argument("--slices", metavar="A:B",
                   help="key slices a:b to run (0-based, b excluded, working-frame order); "
                        "neighbours still come from the whole volume")
    p.add_argument("--score-thr", type=float, default=0.5, help="detections kept in lesions, mask, overlays")
    p.add_argument("--link-iou", type=float, default=0.3,
                   help="in-plane IoU that links boxes of adjacent slices into one lesion")
    p.add_argument("--series", metavar="UID",
                   help="SeriesInstanceUID, when the folder holds several DICOM series")
    p.add_argument("--list-series", action="store_true", help="list the DICOM series in VOLUME and exit")
    p.add_argument("--resample", action="store_true",
                   help="interpolate a DICOM series with uneven slice spacing onto a uniform grid")
    p.add_argument("--save-mask", action="store_true",
                   help="also write lesion_mask.* (box labels, the input's geometry)")
    # On a CPU one key slice per call is fastest (measured in docs/inference.md: 4 per call was 1.7x
    # slower at 512 x 512, the activations outgrow the caches); a GPU wants several.
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="key slices per detector call (default: 1 on cpu, 4 on cuda)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                   help="override config settings, e.g. test_dataloader.dataset.window=[-160,240]")
    p.add_argument("--force", action="store_true", help="replace the outputs of an earlier run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    args = p.parse_args(argv)
    if not args.list_series and (args.config is None or args.checkpoint is None):
        p.error("CONFIG and CHECKPOINT are required (unless --list-series)")
    if args.batch_size is None:
        args.batch_size = 4 if args.device == "cuda" else 1
    if args.batch_size < 1:
        p.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 0 <= args.score_thr <= 1:
        p.error(f"--score-thr must be within [0, 1], got {args.score_thr}")
    return args


def parse_slices(text: Optional[str], num_slices: int) -> List[int]:
    """``"a:b"`` (either end optional, b excluded) -> the key slice indices."""
    if text is None:
        return list(range(num_slices))
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        a = int(parts[0]) if parts[0].strip() else 0
        b = int(parts[1]) if parts[1].strip() else num_slices
    except ValueError:
        raise UsageError(f"--slices {text!r}: expected a:b with integers, e.g. 40:80") from None
    if not 0 <= a < b <= num_slices:
        raise UsageError(f"--slices {text}: expected 0 <= a < b <= {num_slices} (the volume has "
                         f"{num_slices} slices)")
    return list(range(a, b))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.list_series:
        if not osp.isdir(args.volume):
            raise UsageError(f"--list-series needs a DICOM folder; {args.volume} is not a folder")
        found = list_dicom_series(args.volume)
        if not found:
            raise UserError(f"{args.volume} holds no DICOM series")
        for s in found:
            print(f"{s.uid}\t{len(s.files)} files\t{s.description}")
        return 0
    for path, what in ((args.config, "config"), (args.checkpoint, "checkpoint")):
        if not osp.isfile(path):
            raise UserError(f"{what} {path} does not exist")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available to torch here; use --device cpu")
    from mmengine.config import Config

    from mmdet_plugins.inference import build_detector, preprocess_from_config

    try:
        cfg = Config.fromfile(args.config)
    except Exception as err:  # a config is Python: any error in it is the user's file
        raise UserError(f"config {args.config}: cannot load it: {err}") from None
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    pre = preprocess_from_config(cfg)

    t0 = time.perf_counter()
    volume = read_volume(args.volume, series=args.series, resample=args.resample)
    t_read = time.perf_counter() - t0
    keys = parse_slices(args.slices, volume.num_slices)
    name = osp.basename(osp.normpath(args.volume))
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    out = args.out or osp.join("work_dirs", "infer", name)
    # the model and its checkpoint are inputs too: a mistake in them stops the tool before --out exists
    detector = build_detector(cfg, args.checkpoint, args.device)
    earlier = claim_output_dir(out, TOOL, force=args.force)

    s, r, c = volume.hu.shape
    print(f"{volume.source}: {s} slices of {r} x {c}, slice interval {volume.slice_interval:.3f} mm, "
          f"pixels {volume.spacing[0]:.3f} x {volume.spacing[1]:.3f} mm, input orientation "
          f"{volume.input_orientation} (read in {t_read:.1f} s)")
    for note in volume.notes:
        print(f"note: {note}")
    print(f"preprocess: {pre}")
    t1 = time.perf_counter()
    result = detect_volume(volume, detector, pre, keys, args.score_thr, args.link_iou, args.batch_size,
                           progress=not args.no_progress)
    t_det = time.perf_counter() - t1

    entries = ["detections.json", "lesions.csv", "overlays"]
    write_detections_json(osp.join(out, "detections.json"), volume, result)
    write_lesions_csv(osp.join(out, "lesions.csv"), result)
    overlays = osp.join(out, "overlays")
    if osp.isdir(overlays):  # an earlier run's (the marker allowed it): replaced as a whole
        import shutil

        shutil.rmtree(overlays)
    write_overlays(overlays, volume, result)
    if args.save_mask:
        mask = mask_filename(args.volume)
        write_mask(osp.join(out, mask), volume, result)
        entries.append(mask)
    for name in earlier:  # an earlier run's mask must not pass for this run's
        if name.startswith("lesion_mask") and name not in entries and osp.isfile(osp.join(out, name)):
            os.unlink(osp.join(out, name))
    record_outputs(out, TOOL, entries)
    print(f"{len(keys)} slices in {t_det:.1f} s ({t_det / max(len(keys), 1):.2f} s per slice, "
          f"{args.device}); {len(result.lesions)} lesion candidates with score >= {args.score_thr}")
    for les in result.lesions[:10]:
        x, y, z = les["center_mm"]
        print(f"  #{les['lesion_id']}: score {les['score']:.3f}, slices {les['slice_start']}-"
              f"{les['slice_end']}, centre LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm, "
              f"{les['long_axis_mm']:.1f} x {les['short_axis_mm']:.1f} mm")
    if len(result.lesions) > 10:
        print(f"  ... {len(result.lesions) - 10} more in lesions.csv")
    print(f"wrote {', '.join(entries)} to {osp.abspath(out)}")
    return 0


def cli() -> int:
    """The console script ``alignshift-infer``."""
    return run_cli(main, hints=HINTS)


if __name__ == "__main__":
    sys.exit(cli())
