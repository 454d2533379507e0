"""The HTML report's size and its cost next to the detection run, on a CT-like 300 x 512^2 phantom.

    python benchmarks/bench_report.py [--config configs/deeplesion/official/alignshift_7slice.py]
        [--slices 2] [--size 512] [--volume-slices 300] [--noise 12] [--threads N] [--no-detector]

Writes the phantom of :mod:`alignshift.inference.phantom` (thorax and abdomen, ``--noise`` HU of
correlated image noise, 8 lesions) as a NIfTI, reads it, and makes the candidates its lesions would
give (their boxes on every slice they cross: the report's content does not depend on where they come
from). Then, side by side in this process:

- the report: :func:`alignshift.inference.write_report` timed whole (HU code, image encoding, page),
  its size and how its images were stored;
- the detection run it adds to: the config's detector (untrained weights; the cost does not depend on
  them) timed on ``--slices`` key slices after one unmeasured warm-up, extrapolated to every slice, plus
  the reading, as ``benchmarks/bench_infer.py`` measures it.

It prints the report's cost as a share of the run (target <= 10 %) and its size (limit 25 MB).
``--no-detector`` skips the detector (no mmdet needed) and prints the report's figures only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Tuple

import SimpleITK as sitk
from _measure import positive_int

from alignshift.inference import (
    PreprocessConfig,
    ReportInfo,
    Volume,
    VolumeResult,
    read_volume,
    write_report,
)
from alignshift.inference.phantom import ct_phantom, phantom_image, phantom_result


def report_cost(volume: Volume, result: VolumeResult, model_name: str, run_seconds: float,
                out_dir: str) -> Tuple[ReportInfo, float]:
    """Write the report of ``result`` into ``out_dir``; return what was written and its time as a share
    of ``run_seconds`` (the detection run it is added to)."""
    info = write_report(os.path.join(out_dir, "report.html"), volume, result, model_name)
    return info, info.seconds / run_seconds


def time_detector(config: str, volume: Volume, slices: int, tmp: str) -> Tuple[float, PreprocessConfig]:
    """Seconds per key slice of ``config``'s untrained detector on ``volume`` (after one warm-up slice)."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    import mmdet_plugins  # noqa: F401
    from alignshift.inference import detect_volume, preprocess_from_test_pipeline
    from mmdet_plugins.inference import build_detector

    cfg = Config.fromfile(config)
    pre = preprocess_from_test_pipeline(cfg.test_dataloader.dataset, cfg.model, cfg.filename)
    register_all_modules(init_default_scope=True)
    model_cfg = cfg.model.copy()
    model_cfg.backbone.pretrained = None
    ckpt = os.path.join(tmp, "untrained.pth")
    torch.save({"state_dict": MODELS.build(model_cfg).state_dict(), "meta": {}}, ckpt)
    det = build_detector(cfg, ckpt, "cpu")
    mid = volume.num_slices // 2
    detect_volume(volume, det, pre, [mid], batch_size=1, progress=False)  # warm-up
    keys = list(range(mid, min(mid + slices, volume.num_slices)))
    t0 = time.perf_counter()
    detect_volume(volume, det, pre, keys, batch_size=1, progress=False)
    return (time.perf_counter() - t0) / len(keys), pre


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/deeplesion/official/alignshift_7slice.py")
    ap.add_argument("--slices", type=positive_int, default=2, help="key slices the detector is timed on")
    ap.add_argument("--size", type=positive_int, default=512, help="in-plane size of the phantom")
    ap.add_argument("--volume-slices", type=positive_int, default=300, help="slices of the phantom")
    ap.add_argument("--noise", type=float, default=12.0, help="image noise, HU (standard deviation)")
    ap.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--no-detector", action="store_true", help="time the report only")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        hu, lesions = ct_phantom(args.volume_slices, args.size, noise_hu=args.noise)
        path = os.path.join(tmp, "phantom.nii.gz")
        sitk.WriteImage(phantom_image(hu), path)
        del hu
        t_make = time.perf_counter() - t0
        t0 = time.perf_counter()
        vol = read_volume(path)
        t_read = time.perf_counter() - t0
        print(f"phantom {vol.num_slices} x {args.size} x {args.size}, noise {args.noise:g} HU: made in "
              f"{t_make:.0f} s, read in {t_read:.1f} s")
        model = os.path.splitext(os.path.basename(args.config))[0]
        if args.no_detector:
            res = phantom_result(vol, lesions, PreprocessConfig())
            info = write_report(os.path.join(tmp, "report.html"), vol, res, model)
        else:
            per_slice, pre = time_detector(args.config, vol, args.slices, tmp)
            run = t_read + per_slice * vol.num_slices
            print(f"detector {args.config} ({pre.num_slices} slices, sampler {pre.sampler}): "
                  f"{per_slice:.2f} s per key slice (mean over {args.slices}); the run, extrapolated to "
                  f"{vol.num_slices} slices: {run:.0f} s = {run / 60:.1f} min")
            res = phantom_result(vol, lesions, pre)
            info, share = report_cost(vol, res, model, run, tmp)
        quality = f" quality {info.quality}" if info.quality else ""
        print(f"report: {info.bytes / 2**20:.1f} MB (limit 25 MB), {info.image_format}{quality}, "
              f"{info.image_size[0]} x {info.image_size[1]} images (downsampled {info.downsample}x), "
              f"{len(res.lesions)} candidates, written in {info.seconds:.2f} s")
        if not args.no_detector:
            print(f"report cost: {100 * share:.2f} % of the detection run (target <= 10 %)")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"load average {load:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
