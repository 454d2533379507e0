"""Detect lesions in a CT volume (NIfTI, NRRD, MHA, DICOM series) with a trained detector.

``tools/infer_volume.py``, also the console script ``alignshift-infer``:

    python tools/infer_volume.py VOLUME --model NAME [--checkpoints DIR] [--from FILE] [options]
    python tools/infer_volume.py VOLUME CONFIG CHECKPOINT [options]

    options: [--out DIR] [--device cpu|cuda] [--slices a:b] [--score-thr 0.5] [--series UID]
        [--resample] [--save-mask] [--no-report] [--dicom-seg] [--tta] [--batch-size N]
        [--list-series] [--force]

``--model NAME`` is a model of the zoo (``tools/download.py --list``): its config
(``configs/deeplesion/official/NAME.py``) and its converted checkpoint ``DIR/NAME.pth``, fetched and
converted on first use as ``tools/download.py download NAME`` does (``--from FILE``: from a file
fetched by hand). Otherwise the detector is built from CONFIG (mmengine / mmdet, with this project's
``mmdet_plugins``) and loaded from CHECKPOINT. The slices are prepared as the config's test
pipeline prepares DeepLesion (:func:`alignshift.inference.preprocess_from_test_pipeline`: number of
slices, neighbour plan and interpolation, the published sampling of the official configs, HU window,
keep-ratio Resize; the model's data preprocessor normalises), with the scan's own slice interval as
the thickness. Writes ``detections.json``, ``lesions.csv``, ``overlays/`` and ``report.html`` (and
with --save-mask a label volume in the input's geometry, with --dicom-seg a DICOM SEG on the source
series) to --out. See docs/inference.md for the formats and the geometry conventions.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import shutil
import sys
import time
from typing import List, Optional, Sequence

from alignshift.apps.cli import ArgumentParser, run_cli
from alignshift.apps.outputs import check_output_dir, claim_output_dir, record_outputs
from alignshift.errors import UsageError, UserError
from alignshift.inference import (
    check_dicom_seg_source,
    detect_volume,
    list_dicom_series,
    mask_filename,
    preprocess_from_test_pipeline,
    read_volume,
    sampling_notes,
    write_detections_json,
    write_dicom_seg,
    write_lesions_csv,
    write_mask,
    write_overlays,
    write_report,
)

__all__ = ["DICOM_SEG", "REPORT", "TOOL", "cli", "main", "parse_args", "parse_slices"]

TOOL = "infer_volume"
REPORT = "report.html"
DICOM_SEG = "lesions_seg.dcm"
HINTS = {"series": "choose one with --series UID (--list-series lists them)",
         "resample": "rerun with --resample",
         "dicom_seg": "--dicom-seg needs a DICOM series folder as the input; drop it for this scan"}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction

    p = ArgumentParser(prog="infer_volume.py", description="Detect lesions in a CT volume")
    p.add_argument("volume", help="a volume file (.nii, .nii.gz, .nrrd, .mha, ...) or a DICOM series folder")
    p.add_argument("config", nargs="?", help="the detector's config file (or --model NAME)")
    p.add_argument("checkpoint", nargs="?", help="the detector's checkpoint (.pth)")
    p.add_argument("--model", metavar="NAME",
                   help="a model of the zoo (tools/download.py --list), instead of CONFIG CHECKPOINT; "
                        "fetched and converted on first use")
    p.add_argument("--checkpoints", metavar="DIR", default="checkpoints",
                   help="where --model's converted checkpoint is, or is put (as tools/download.py --dest)")
    p.add_argument("--from", dest="from_file", metavar="FILE",
                   help="with --model: the published snapshot file, fetched by hand, to convert")
    p.add_argument("--index", default=None, help=argparse.SUPPRESS)  # another model index (tests)
    p.add_argument("--out", metavar="DIR",
                   help="output folder; when not given, work_dirs/infer/<volume name>")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the detector runs")
    p.add_argument("--slices", metavar="A:B",
                   help="key slices a:b to run (0-based, b excluded, working-frame order); "
                        "neighbours still come from the whole volume")
    p.add_argument("--score-thr", type=float, default=0.5,
                   help="detections kept in lesions, mask, overlays, report and SEG")
    p.add_argument("--link-iou", type=float, default=0.3,
                   help="in-plane IoU that links boxes of adjacent slices into one lesion")
    p.add_argument("--series", metavar="UID",
                   help="SeriesInstanceUID, when the folder holds several DICOM series")
    p.add_argument("--list-series", action="store_true", help="list the DICOM series in VOLUME and exit")
    p.add_argument("--resample", action="store_true",
                   help="interpolate a DICOM series with uneven slice spacing onto a uniform grid")
    p.add_argument("--save-mask", action="store_true",
                   help="also write lesion_mask.* (box labels, the input's geometry)")
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                   help=f"write {REPORT}, the scan with its candidates for any browser (--no-report: skip)")
    p.add_argument("--dicom-seg", action="store_true",
                   help=f"write the candidates as a DICOM SEG on the source series ({DICOM_SEG}); "
                        "DICOM inputs only")
    p.add_argument("--tta", action="store_true",
                   help="horizontal-flip test-time augmentation, merged as tools/test.py --tta merges it")
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
    if not args.list_series:
        if args.model is not None and args.config is not None:
            p.error("give either --model NAME or CONFIG CHECKPOINT, not both")
        if args.model is None and (args.config is None or args.checkpoint is None):
            p.error("give --model NAME (tools/download.py --list) or CONFIG CHECKPOINT")
    if args.from_file is not None and args.model is None:
        p.error("--from FILE converts a zoo snapshot: it goes with --model NAME")
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


def _volume_name(path: str) -> str:
    name = osp.basename(osp.normpath(path))
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _list_series(folder: str) -> int:
    if not osp.isdir(folder):
        raise UsageError(f"--list-series needs a DICOM folder; {folder} is not a folder")
    found = list_dicom_series(folder)
    if not found:
        raise UserError(f"{folder} holds no DICOM series")
    for s in found:
        print(f"{s.uid}\t{len(s.files)} files\t{s.description}")
    return 0


def main(argv: Optional[Sequence[str]] = None, drive_downloader=None) -> int:
    """Run the tool. ``drive_downloader`` replaces gdown for ``--model`` (tests use a local stand-in)."""
    args = parse_args(argv)
    if args.list_series:
        return _list_series(args.volume)

    # --- every input is checked before anything long runs and before --out is created ---
    zoo = None
    if args.model is not None:
        from alignshift.apps.zoo import zoo_model

        zoo = zoo_model(args.model, args.checkpoints, args.index)
        config, model_name = zoo.config, zoo.name
        if args.from_file is not None and not osp.isfile(args.from_file):
            raise UserError(f"--from {args.from_file}: no such file")
    else:
        config, model_name = args.config, osp.splitext(osp.basename(args.config))[0]
        for path, what in ((args.config, "config"), (args.checkpoint, "checkpoint")):
            if not osp.isfile(path):
                raise UserError(f"{what} {path} does not exist")
    out = args.out or osp.join("work_dirs", "infer", _volume_name(args.volume))
    check_output_dir(out, TOOL)  # unwritable, or someone else's: said now, nothing created
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available to torch here; use --device cpu")
    from mmengine.config import Config

    try:
        cfg = Config.fromfile(config)
    except Exception as err:  # a config is Python: any error in it is the user's file
        raise UserError(f"config {config}: cannot load it: {err}") from None
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    pre = preprocess_from_test_pipeline(cfg.test_dataloader.dataset, cfg.model, cfg.filename)

    t0 = time.perf_counter()
    volume = read_volume(args.volume, series=args.series, resample=args.resample)
    t_read = time.perf_counter() - t0
    if args.dicom_seg:
        check_dicom_seg_source(volume)
    keys = parse_slices(args.slices, volume.num_slices)

    from mmdet_plugins.inference import build_detector

    if zoo is not None:
        from alignshift.apps.zoo import ensure_checkpoint

        kw = {} if drive_downloader is None else dict(drive_downloader=drive_downloader)
        checkpoint = ensure_checkpoint(zoo, args.from_file, progress=not args.no_progress, **kw)
    else:
        checkpoint = args.checkpoint
    # the model and its checkpoint are inputs too: a mistake in them stops the tool before --out exists
    detector = build_detector(cfg, checkpoint, args.device)
    if args.tta:
        from mmdet_plugins.tta import flip_tta_detector

        try:
            detector = flip_tta_detector(detector, cfg.model.get("test_cfg"))
        except ValueError as err:
            raise UserError(f"{cfg.filename}: {err}") from None
    earlier = claim_output_dir(out, TOOL, force=args.force)

    s, r, c = volume.hu.shape
    print(f"{volume.source}: {s} slices of {r} x {c}, slice interval {volume.slice_interval:.3f} mm, "
          f"pixels {volume.spacing[0]:.3f} x {volume.spacing[1]:.3f} mm, input orientation "
          f"{volume.input_orientation} (read in {t_read:.1f} s)")
    for note in [*volume.notes, *sampling_notes(volume.num_slices, volume.slice_interval, pre)]:
        print(f"note: {note}")
    print(f"model: {model_name} ({checkpoint}){', flip TTA' if args.tta else ''}")
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
        shutil.rmtree(overlays)
    write_overlays(overlays, volume, result)
    if args.save_mask:
        mask = mask_filename(args.volume)
        write_mask(osp.join(out, mask), volume, result)
        entries.append(mask)
    report = None
    if args.report:
        report = write_report(osp.join(out, REPORT), volume, result, model_name)
        entries.append(REPORT)
    seg = None
    if args.dicom_seg:
        seg = write_dicom_seg(osp.join(out, DICOM_SEG), volume, result, model_name)
        if seg is not None:
            entries.append(DICOM_SEG)
    # an earlier run's mask, report or SEG must not pass for this run's
    for name in earlier:
        stale = name.startswith("lesion_mask") or name in (REPORT, DICOM_SEG)
        if stale and name not in entries and osp.isfile(osp.join(out, name)):
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
    if report is not None:
        print(f"{REPORT}: {report.bytes / 2**20:.1f} MB, written in {report.seconds:.1f} s. "
              f"{report.statement}")
    if args.dicom_seg:
        if seg is None:
            print(f"no candidate with score >= {args.score_thr}: no DICOM SEG written (a SEG needs a "
                  "segment)")
        else:
            print(f"{DICOM_SEG}: {seg.num_segments} segments, {seg.num_frames} frames on "
                  f"{len(seg.referenced_files)} source images, SeriesInstanceUID {seg.series_instance_uid}")
    print(f"wrote {', '.join(entries)} to {osp.abspath(out)}")
    return 0


def cli() -> int:
    """The console script ``alignshift-infer``."""
    return run_cli(main, hints=HINTS)


if __name__ == "__main__":
    sys.exit(cli())
