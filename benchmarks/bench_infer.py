"""Time tools/infer_volume.py's work on a CT volume and extrapolate to a 300-slice 512 x 512 scan.

    python benchmarks/bench_infer.py [--config configs/deeplesion/fasterrcnn_densenet_alignshift_3slice.py]
        [--slices 4] [--size 512] [--volume-slices 300] [--batch-size 1] [--device cpu] [--threads N]
        [--cfg-options KEY=VALUE ...]

Writes a synthetic ``--volume-slices`` x ``--size``^2 NIfTI (air, a soft-tissue body, a few bright
spheres), times ``read_volume`` on it, then runs the config's detector (untrained weights: the
cost does not depend on them; ``pretrained`` is switched off) on ``--slices`` key slices after one
unmeasured warm-up batch, and prints seconds per slice and the extrapolated time for the whole
volume (read + slices x per-slice time + linking and writing). The target is <= 10 minutes for 300
slices of 512 x 512 with the 3-slice model on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import SimpleITK as sitk
import torch
from _measure import positive_int

from alignshift.inference import (
    detect_volume,
    read_volume,
    write_detections_json,
    write_lesions_csv,
    write_overlays,
)


def synthetic_volume(path: str, slices: int, size: int) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    body = ((xx - size / 2) / (0.45 * size)) ** 2 + ((yy - size / 2) / (0.35 * size)) ** 2 <= 1
    vol = np.full((slices, size, size), -1000, np.int16)
    vol[:, body] = 40
    zz = np.arange(slices)[:, None, None]
    for _ in range(6):
        c = rng.uniform([0, 0.3 * size, 0.3 * size], [slices, 0.7 * size, 0.7 * size])
        r = rng.uniform(4, 12)
        ball = (zz - c[0]) ** 2 * 4 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r
        vol[ball] = 90
    img = sitk.GetImageFromArray(vol)
    img.SetSpacing((0.7, 0.7, 2.5))
    sitk.WriteImage(img, path)


def main() -> None:
    from mmengine.config import Config, DictAction

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/deeplesion/fasterrcnn_densenet_alignshift_3slice.py")
    ap.add_argument("--slices", type=positive_int, default=4,
                    help="key slices timed (>= --volume-slices: all of them)")
    ap.add_argument("--size", type=positive_int, default=512, help="in-plane size of the volume")
    ap.add_argument("--volume-slices", type=positive_int, default=300, help="slices of the volume")
    ap.add_argument("--batch-size", type=positive_int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                    help="override config settings, e.g. model.test_cfg.rpn.max_per_img=1000")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from mmdet_plugins.inference import build_detector, preprocess_from_config

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    pre = preprocess_from_config(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ct.nii")
        synthetic_volume(path, args.volume_slices, args.size)
        t0 = time.perf_counter()
        vol = read_volume(path)
        t_read = time.perf_counter() - t0
        # a checkpoint of the untrained model, as the tool loads one
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules

        import mmdet_plugins  # noqa: F401

        register_all_modules(init_default_scope=True)
        model_cfg = cfg.model.copy()
        model_cfg.backbone.pretrained = None
        ckpt = os.path.join(tmp, "untrained.pth")
        torch.save({"state_dict": MODELS.build(model_cfg).state_dict(), "meta": {}}, ckpt)
        det = build_detector(cfg, ckpt, args.device)
        mid = vol.num_slices // 2
        warm = list(range(mid, mid + args.batch_size))
        detect_volume(vol, det, pre, warm, batch_size=args.batch_size, progress=False)
        # --slices >= the volume's: every slice, the whole run measured rather than extrapolated
        keys = (list(range(vol.num_slices)) if args.slices >= vol.num_slices
                else list(range(mid, min(mid + args.slices, vol.num_slices))))
        # The RoI head's cost grows with the proposals that survive the RPN's NMS, which untrained
        # weights may leave fewer of than a trained detector (capped by test_cfg.rpn.max_per_img).
        rois: list = []
        hook = det.model.roi_head.bbox_roi_extractor.register_forward_hook(
            lambda mod, inp, out: rois.append(int(inp[1].shape[0])))
        if args.device == "cuda":
            torch.cuda.synchronize()
        t1, c1 = time.perf_counter(), time.process_time()
        res = detect_volume(vol, det, pre, keys, score_thr=0.5, batch_size=args.batch_size, progress=False)
        if args.device == "cuda":
            torch.cuda.synchronize()
        per_slice = (time.perf_counter() - t1) / len(keys)
        cpu_per_slice = (time.process_time() - c1) / len(keys)
        hook.remove()
        t2 = time.perf_counter()
        out = os.path.join(tmp, "out")
        os.makedirs(out)
        write_detections_json(os.path.join(out, "detections.json"), vol, res)
        write_lesions_csv(os.path.join(out, "lesions.csv"), res)
        write_overlays(os.path.join(out, "overlays"), vol, res)
        t_write = time.perf_counter() - t2
    total = t_read + per_slice * vol.num_slices + t_write
    print(f"config {args.config}: {pre}")
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, os.cpu_count() {os.cpu_count()}, "
          f"batch size {args.batch_size}")
    print(f"read {vol.num_slices} x {args.size} x {args.size}: {t_read:.1f} s")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"detector: {per_slice:.2f} s wall, {cpu_per_slice:.2f} s CPU (all threads) per key slice "
          f"(mean over {len(keys)} slices; load average {load:.1f} on {os.cpu_count()} cores)")
    print(f"outputs for {len(res.lesions)} candidates: {t_write:.2f} s")
    print(f"proposals into the RoI head: {sum(rois) / len(keys):.0f} per key slice (cap "
          f"test_cfg.rpn.max_per_img = {cfg.model.test_cfg.rpn.max_per_img})")
    how = "measured" if len(keys) == vol.num_slices else "extrapolated"
    print(f"{how} for {vol.num_slices} slices: {total:.0f} s = {total / 60:.1f} min wall "
          f"(target <= 10 min on 2 CPU cores)")
    # On a shared machine the wall time includes waiting for the CPU; the CPU time spread over the
    # torch threads is what a machine with that many free cores would take.
    free = t_read + cpu_per_slice / torch.get_num_threads() * vol.num_slices + t_write
    print(f"on {torch.get_num_threads()} free cores (CPU time / threads): about {free:.0f} s = "
          f"{free / 60:.1f} min")


if __name__ == "__main__":
    main()
