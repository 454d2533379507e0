"""Time tools/infer_volume.py's work on a 300 x 512^2 CT volume: per slice, whole volume, and the report.

    python benchmarks/bench_infer.py [--model alignshift_7slice | --config CONFIG] [--checkpoint FILE]
        [--slices 4] [--size 512] [--volume-slices 300] [--noise 12] [--batch-size 1] [--device cpu]
        [--threads N] [--no-report] [--cfg-options KEY=VALUE ...]

Writes the CT-like phantom of :mod:`alignshift.inference.phantom` (``--volume-slices`` x ``--size``^2,
``--noise`` HU of image noise) as a NIfTI and times what the tool does with it, side by side in this
process: ``read_volume``; the detector on ``--slices`` key slices after one unmeasured warm-up batch
(``--slices`` >= the volume's: every slice, measured rather than extrapolated); linking and writing
``detections.json``, ``lesions.csv`` and the overlays; and ``report.html`` (on by default in the
tool), whose cost it prints as a share of the whole run.

The detector: ``--model NAME``, a zoo model (``tools/download.py --list``): its official config with
``--checkpoint`` (its converted snapshot) or, by default, a fixture snapshot: the published
checkpoint's layout with random weights, converted as ``tools/download.py`` converts the real one
(the same network; its speed does not depend on the weights). ``--config``: that config's model,
untrained. Targets on 2 CPU cores: <= 12 min for 300 slices with the 7-slice model (10 min with 3
slices); the report <= 10 % of the run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import SimpleITK as sitk
import torch
from _measure import positive_int

from alignshift.inference import (
    detect_volume,
    preprocess_from_test_pipeline,
    read_volume,
    write_detections_json,
    write_lesions_csv,
    write_overlays,
    write_report,
)
from alignshift.inference.phantom import ct_phantom, phantom_image


def checkpoint_for(args, cfg, tmp: str) -> tuple:
    """The checkpoint to time and a sentence saying what its weights are."""
    if args.checkpoint:
        return args.checkpoint, f"weights: {args.checkpoint}"
    ckpt = os.path.join(tmp, "weights.pth")
    if args.model:
        from alignshift.apps.zoo import convert_v1_checkpoint, find_entry, load_index
        from alignshift.apps.zoo.testing import fake_published_checkpoint

        entry = find_entry(load_index(), args.model)
        converted, _ = convert_v1_checkpoint(fake_published_checkpoint(entry.slices, entry.conv), entry.conv,
                                             entry.slices)
        torch.save(converted, ckpt)
        return ckpt, (f"weights: a fixture snapshot of {args.model} (the published layout, random weights, "
                      "converted as tools/download.py converts it): the same network, not the trained one")
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import mmdet_plugins  # noqa: F401

    register_all_modules(init_default_scope=True)
    model_cfg = cfg.model.copy()
    model_cfg.backbone.pretrained = None
    torch.save({"state_dict": MODELS.build(model_cfg).state_dict(), "meta": {}}, ckpt)
    return ckpt, "weights: untrained"


def main() -> None:
    from mmengine.config import Config, DictAction

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--model", help="a zoo model (tools/download.py --list), e.g. alignshift_7slice")
    which.add_argument("--config", help="a detector config (default: "
                                        "configs/deeplesion/fasterrcnn_densenet_alignshift_3slice.py)")
    ap.add_argument("--checkpoint", help="the weights to load (default: random, see above)")
    ap.add_argument("--slices", type=positive_int, default=4,
                    help="key slices timed (>= --volume-slices: all of them)")
    ap.add_argument("--size", type=positive_int, default=512, help="in-plane size of the volume")
    ap.add_argument("--volume-slices", type=positive_int, default=300, help="slices of the volume")
    ap.add_argument("--noise", type=float, default=12.0, help="image noise of the phantom, HU")
    ap.add_argument("--batch-size", type=positive_int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--no-report", action="store_true", help="do not time the report")
    ap.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                    help="override config settings, e.g. model.test_cfg.rpn.max_per_img=1000")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from mmdet_plugins.inference import build_detector

    if args.model:
        from alignshift.apps.zoo import zoo_model

        config, name = zoo_model(args.model).config, args.model
    else:
        config = args.config or "configs/deeplesion/fasterrcnn_densenet_alignshift_3slice.py"
        name = os.path.splitext(os.path.basename(config))[0]
    cfg = Config.fromfile(config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    pre = preprocess_from_test_pipeline(cfg.test_dataloader.dataset, cfg.model, cfg.filename)
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ct.nii.gz")
        hu, _ = ct_phantom(args.volume_slices, args.size, noise_hu=args.noise)
        sitk.WriteImage(phantom_image(hu), path)
        del hu
        t0 = time.perf_counter()
        vol = read_volume(path)
        t_read = time.perf_counter() - t0
        ckpt, weights = checkpoint_for(args, cfg, tmp)
        det = build_detector(cfg, ckpt, args.device)
        mid = vol.num_slices // 2
        warm = list(range(mid, min(mid + args.batch_size, vol.num_slices)))
        detect_volume(vol, det, pre, warm, batch_size=args.batch_size, progress=False)
        keys = (list(range(vol.num_slices)) if args.slices >= vol.num_slices
                else list(range(mid, min(mid + args.slices, vol.num_slices))))
        # The RoI head's cost grows with the proposals that survive the RPN's NMS, which random
        # weights may leave more or fewer of than a trained detector (capped by test_cfg.rpn.max_per_img).
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
        report = None if args.no_report else write_report(os.path.join(out, "report.html"), vol, res, name)
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    total = t_read + per_slice * vol.num_slices + t_write
    print(f"model {name} ({config}): {pre}")
    print(weights)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, os.cpu_count() {os.cpu_count()}, "
          f"batch size {args.batch_size}; load average {load0:.1f} before, {load1:.1f} after")
    print(f"read {vol.num_slices} x {args.size} x {args.size}: {t_read:.1f} s")
    print(f"detector: {per_slice:.2f} s wall, {cpu_per_slice:.2f} s CPU (all threads) per key slice "
          f"(mean over {len(keys)} slices)")
    print(f"outputs for {len(res.lesions)} candidates: {t_write:.2f} s")
    print(f"proposals into the RoI head: {sum(rois) / len(keys):.0f} per key slice (cap "
          f"test_cfg.rpn.max_per_img = {cfg.model.test_cfg.rpn.max_per_img})")
    how = "measured" if len(keys) == vol.num_slices else "extrapolated"
    target = 12 if pre.num_slices >= 7 else 10
    print(f"{how} for {vol.num_slices} slices: {total:.0f} s = {total / 60:.1f} min wall "
          f"(target <= {target} min on 2 CPU cores for a {pre.num_slices}-slice model)")
    # On a shared machine the wall time includes waiting for the CPU; the CPU time spread over the
    # torch threads is what a machine with that many free cores would take.
    free = t_read + cpu_per_slice / torch.get_num_threads() * vol.num_slices + t_write
    print(f"on {torch.get_num_threads()} free cores (CPU time / threads): about {free:.0f} s = "
          f"{free / 60:.1f} min")
    if report is not None:
        quality = f" quality {report.quality}" if report.quality else ""
        print(f"report: {report.bytes / 2**20:.1f} MB (limit 25 MB), {report.image_format}{quality}, "
              f"{report.image_size[0]} x {report.image_size[1]} images (downsampled {report.downsample}x), "
              f"written in {report.seconds:.2f} s")
        print(f"report cost: {100 * report.seconds / total:.2f} % of the {how} run (target <= 10 %)")


if __name__ == "__main__":
    main()
