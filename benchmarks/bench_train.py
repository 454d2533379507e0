"""Training throughput of the whole detectors side by side: plain 3D, TSM, AlignShift and 2.5D.

    python benchmarks/bench_train.py [--device cuda] [--image-size 512] [--batch-size 2]
        [--iters 50] [--warmup 10] [--variants 3d,tsm,alignshift,2.5d] [--slices 3,7]
        [--amp both|on|off] [--compile MODE] [--workers N] [--data-root DIR] [--json OUT]
        [--cfg-options KEY=VALUE ...]

Each detector is built from its config in ``configs/deeplesion/`` (the plain 3D one is the TSM
config with ``conv='plain'``: same data, no shift; no ImageNet download, random initialisation
costs the same) and trained for ``--warmup`` untimed then ``--iters`` timed iterations of the
config's own training step: its data loader (PNG decoding, windowing, resampling, augmentation,
collation) over a synthetic DeepLesion written at ``--image-size`` (or ``--data-root``), the data
preprocessor, forward, backward, gradient clipping and SGD, with AMP through mmengine's
``AmpOptimWrapper`` as ``tools/train.py --amp`` sets it. The real loader, rather than random
tensors, is what gives the loader's share of an iteration, and the synthetic thicknesses (half
thin, half 5 mm) give AlignShift its per-sample shift weights.

Per variant, slice count and AMP setting: iterations/s and images/s (timed iterations over their
total wall time), the median iteration, the share of it spent waiting for the loader, the peak
GPU memory (``torch.cuda.max_memory_allocated`` over the timed iterations) and the time and memory
ratios to the plain 3D detector measured in the same run. Every iteration ends by reading its
losses as numbers, as mmengine's logging does, which waits for the GPU.

Variants run one after the other, each as one block (a fresh model, its own loader), so that its
loader works only alongside its own steps; ``--rounds 2`` repeats the blocks in reverse order.
AMP runs only on CUDA. ``--compile MODE`` puts each backbone (not the mmdet heads) through
``torch.compile(mode=MODE)``; compiling happens in the warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import platform
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import torch
from _measure import positive_int

from alignshift.apps.cli import run_cli
from alignshift.errors import UsageError, UserError

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

CONFIG_DIR = osp.join(ROOT, "configs", "deeplesion")
# variant -> (config file for N slices, backbone overrides); the plain 3D detector is TSM's with no
# shift, so it reads the same resampled slices
VARIANTS: Dict[str, tuple] = {
    "3d": ("fasterrcnn_densenet_tsm_{n}slice.py", {"conv": "plain"}),
    "tsm": ("fasterrcnn_densenet_tsm_{n}slice.py", {}),
    "alignshift": ("fasterrcnn_densenet_alignshift_{n}slice.py", {}),
    "2.5d": ("fasterrcnn_densenet_2.5d_{n}slice.py", {}),
    "a3d": ("fasterrcnn_densenet_a3d_7slice.py", {}),  # one file; num_slices set below
}
BASELINE = "3d"
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _csv(text: str) -> List[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--image-size", type=positive_int, default=512,
                    help="images are resized to this (keep ratio), as img_scale in the configs")
    ap.add_argument("--batch-size", type=positive_int, default=2, help="images per iteration")
    ap.add_argument("--iters", type=positive_int, default=50, help="timed iterations per block")
    ap.add_argument("--warmup", type=int, default=10, help="untimed iterations first")
    ap.add_argument("--rounds", type=positive_int, default=1,
                    help="blocks per variant, in alternating order")
    ap.add_argument("--variants", default="3d,tsm,alignshift,2.5d",
                    help=f"comma-separated, from {','.join(VARIANTS)}; the ratios need '{BASELINE}'")
    ap.add_argument("--slices", default="3,7", help="comma-separated slice counts")
    ap.add_argument("--amp", choices=("both", "on", "off"), default="both",
                    help="AMP (fp16 autocast + dynamic loss scale); 'on' needs CUDA")
    ap.add_argument("--compile", metavar="MODE", default=None, choices=COMPILE_MODES,
                    help="torch.compile each backbone with this mode")
    ap.add_argument("--workers", type=int, default=None,
                    help="data loader workers (default: the config's, 2)")
    ap.add_argument("--data-root", default=None,
                    help="a prepared DeepLesion-format root (annotations/deeplesion_train.json); "
                         "default: a synthetic one written to a temporary folder")
    ap.add_argument("--num-images", type=positive_int, default=16,
                    help="images of the synthetic data set (the loader cycles over them)")
    ap.add_argument("--cfg-options", nargs="+", default=None, metavar="KEY=VALUE",
                    help="override settings of every variant's config, as tools/train.py does "
                         "(e.g. model.roi_head.bbox_head.fc_out_channels=256 for a quick run)")
    ap.add_argument("--json", metavar="OUT", default=None, help="write the raw results here")
    ap.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    args = ap.parse_args(argv)
    if args.cfg_options:
        from mmengine.config import DictAction

        for item in args.cfg_options:
            if "=" not in item:
                raise UsageError(f"--cfg-options: expected KEY=VALUE, got {item!r}")
        ns = argparse.Namespace()
        DictAction(option_strings=[], dest="opts")(ap, ns, args.cfg_options)  # as tools/train.py
        args.cfg_options = ns.opts
    args.variants = _csv(args.variants)
    bad = [v for v in args.variants if v not in VARIANTS]
    if bad or not args.variants:
        raise UsageError(f"--variants: unknown {bad or 'empty list'}; choose from {','.join(VARIANTS)}")
    try:
        args.slices = [int(s) for s in _csv(args.slices)]
    except ValueError:
        raise UsageError(f"--slices: expected comma-separated whole numbers, got {args.slices!r}") from None
    if not args.slices or any(s < 1 or s % 2 == 0 for s in args.slices):
        raise UsageError(f"--slices: odd counts >= 1 around the key slice, got {args.slices}")
    if args.warmup < 0:
        raise UsageError(f"--warmup: expected a whole number >= 0, got {args.warmup}")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers: expected a whole number >= 0, got {args.workers}")
    if args.image_size < 64:
        raise UsageError(f"--image-size: at least 64 (the synthetic phantoms' minimum), "
                         f"got {args.image_size}")
    try:
        args.device = torch.device(args.device)
    except RuntimeError as e:
        raise UsageError(f"--device {args.device}: {e}") from None
    if args.device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA GPU here")
    if args.data_root is not None:
        ann = osp.join(args.data_root, "annotations", "deeplesion_train.json")
        if not osp.isfile(ann):
            raise UserError(f"--data-root {args.data_root}: {ann} does not exist (write it with "
                            "tools/prepare_deeplesion.py)")
    if args.json:
        parent = osp.dirname(osp.abspath(args.json))
        if not osp.isdir(parent) or not os.access(parent, os.W_OK):
            raise UserError(f"--json {args.json}: folder {parent} does not exist or is not writable")
    return args


def synthetic_root(out_dir: str, num_images: int, image_size: int) -> str:
    """A synthetic DeepLesion release in ``out_dir`` with every image in one training annotation
    file (splits do not matter for timing)."""
    from alignshift.data import make_synthetic_deeplesion, parse_dl_info, records_to_coco

    csv_path = make_synthetic_deeplesion(out_dir, num_images, image_size, seed=0, progress=False)
    records = [r for r in parse_dl_info(csv_path) if r.lesions]
    os.makedirs(osp.join(out_dir, "annotations"), exist_ok=True)
    with open(osp.join(out_dir, "annotations", "deeplesion_train.json"), "w") as f:
        json.dump(records_to_coco(records, "train"), f)
    return out_dir


def variant_config(variant: str, slices: int, amp: bool, args: argparse.Namespace, data_root: str):
    """The variant's training config, set for this benchmark (data root, size, batch, AMP)."""
    from mmengine.config import Config

    name, backbone = VARIANTS[variant]
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name.format(n=slices)))
    cfg.model.backbone.update(backbone, num_slices=slices, pretrained=None)
    dl = cfg.train_dataloader
    dl.batch_size = args.batch_size
    if args.workers is not None:
        dl.num_workers = args.workers
    dl.persistent_workers = dl.num_workers > 0
    dl.sampler = dict(type="InfiniteSampler", shuffle=True)  # cycles over a small data set
    ds = dl.dataset
    ds.update(num_slices=slices, data_root=osp.abspath(data_root) + "/",
              ann_file=osp.join(osp.abspath(data_root), "annotations", "deeplesion_train.json"))
    for t in ds.pipeline:
        if t["type"] == "Resize":
            t["scale"] = (args.image_size, args.image_size)
    if amp:  # as tools/train.py --amp
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.loss_scale = "dynamic"
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def _loss_value(log_vars: dict) -> float:
    # reading the losses as numbers waits for the GPU, as mmengine's logging does every iteration
    v = log_vars["loss"]
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


def run_block(variant: str, slices: int, amp: bool, args: argparse.Namespace, data_root: str) -> dict:
    """Build one detector with its loader and optimiser, train ``warmup + iters`` iterations,
    and return the timings of the last ``iters``."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS
    from mmengine.runner import Runner

    device = args.device
    cfg = variant_config(variant, slices, amp, args, data_root)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device)
    model.train()
    if args.compile:
        model.backbone = torch.compile(model.backbone,
                                       mode=None if args.compile == "default" else args.compile)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    batches = iter(loader)
    data_t: List[float] = []
    iter_t: List[float] = []
    losses: List[float] = []
    try:
        for i in range(args.warmup + args.iters):
            if i == args.warmup and device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            data = next(batches)
            t1 = time.perf_counter()
            log_vars = model.train_step(data, optim_wrapper)
            loss = _loss_value(log_vars)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t2 = time.perf_counter()
            if i >= args.warmup:
                data_t.append(t1 - t0)
                iter_t.append(t2 - t0)
                losses.append(loss)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    finally:
        del batches, loader  # stops the workers
    del model, optim_wrapper
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return dict(variant=variant, slices=slices, amp=amp, iter_times_s=iter_t, data_times_s=data_t,
                losses=losses, peak_memory_bytes=peak)


def summarise(blocks: List[dict], batch_size: int) -> List[dict]:
    """One row per (slices, amp, variant) over all its rounds, with ratios to the plain 3D one."""
    rows: Dict[tuple, dict] = {}
    for b in blocks:
        key = (b["slices"], b["amp"], b["variant"])
        row = rows.setdefault(key, dict(variant=b["variant"], slices=b["slices"], amp=b["amp"],
                                        iter_times_s=[], data_times_s=[], losses=[],
                                        peak_memory_bytes=None))
        row["iter_times_s"] += b["iter_times_s"]
        row["data_times_s"] += b["data_times_s"]
        row["losses"] += b["losses"]
        if b["peak_memory_bytes"] is not None:
            row["peak_memory_bytes"] = max(row["peak_memory_bytes"] or 0, b["peak_memory_bytes"])
    for row in rows.values():
        total = sum(row["iter_times_s"])
        row["iters_per_s"] = len(row["iter_times_s"]) / total
        row["images_per_s"] = row["iters_per_s"] * batch_size
        row["median_iter_s"] = statistics.median(row["iter_times_s"])
        row["data_share"] = sum(row["data_times_s"]) / total
        row["losses_finite"] = all(v == v and abs(v) != float("inf") for v in row["losses"])
    for row in rows.values():
        base = rows.get((row["slices"], row["amp"], BASELINE))
        row["time_vs_3d"] = base["iters_per_s"] / row["iters_per_s"] if base else None
        pm, bm = row["peak_memory_bytes"], base and base["peak_memory_bytes"]
        row["memory_vs_3d"] = pm / bm if pm and bm else None
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], k[1], list(VARIANTS).index(k[2])))]


def machine() -> dict:
    info = dict(torch=torch.__version__, python=platform.python_version(), cpus=os.cpu_count(),
                threads=torch.get_num_threads(), processor=platform.processor() or platform.machine())
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda,
                    capability=".".join(map(str, torch.cuda.get_device_capability())))
    try:
        import mmcv
        import mmdet
        import mmengine
        info.update(mmcv=mmcv.__version__, mmdet=mmdet.__version__, mmengine=mmengine.__version__)
    except ImportError:
        pass
    return info


def format_table(rows: List[dict]) -> str:
    head = (f"{'slices':>6} {'amp':>4} {'variant':>10} | {'it/s':>7} {'img/s':>7} {'ms/it med':>9} "
            f"{'data %':>6} {'peak MiB':>9} | {'time vs 3D':>10} {'mem vs 3D':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        mem = "n/a" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 2**20:.0f}"
        tv = "n/a" if r["time_vs_3d"] is None else f"{r['time_vs_3d']:.2f}x"
        mv = "n/a" if r["memory_vs_3d"] is None else f"{r['memory_vs_3d']:.2f}x"
        lines.append(f"{r['slices']:>6} {'on' if r['amp'] else 'off':>4} {r['variant']:>10} | "
                     f"{r['iters_per_s']:7.3f} {r['images_per_s']:7.3f} "
                     f"{1e3 * r['median_iter_s']:9.1f} {100 * r['data_share']:6.1f} {mem:>9} | "
                     f"{tv:>10} {mv:>9}" + ("" if r["losses_finite"] else "  (non-finite loss)"))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from mmdet.utils import register_all_modules

    import mmdet_plugins  # noqa: F401  (registers the detector, backbones and dataset)

    register_all_modules(init_default_scope=True)
    notes = []
    amps = {"both": [False, True], "on": [True], "off": [False]}[args.amp]
    if args.device.type != "cuda" and True in amps:
        amps = [a for a in amps if not a]
        notes.append("AMP skipped: mmengine's AmpOptimWrapper (fp16 autocast, loss scaling) needs CUDA")
        if not amps:
            raise UsageError("--amp on needs --device cuda")
    if BASELINE not in args.variants:
        notes.append(f"no '{BASELINE}' variant: no ratios")
    info = machine()
    where = info.get("gpu", info["processor"]) if args.device.type == "cuda" else \
        f"CPU ({info['cpus']} cores, {info['threads']} threads)"
    print(f"device {args.device}: {where} | torch {info['torch']}"
          + (f", mmcv {info['mmcv']}, mmdet {info['mmdet']}" if "mmcv" in info else "")
          + (f", torch.compile {args.compile!r} on the backbones" if args.compile else ""))
    for n in notes:
        print(f"note: {n}")
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        data_root = args.data_root
        if data_root is None:
            t0 = time.perf_counter()
            data_root = synthetic_root(osp.join(tmp, "DeepLesion"), args.num_images, args.image_size)
            print(f"synthetic DeepLesion: {args.num_images} images of {args.image_size} px "
                  f"({time.perf_counter() - t0:.1f} s)")
        workers = args.workers if args.workers is not None else "config's"
        print(f"{args.image_size}x{args.image_size}, {args.batch_size} images per iteration, "
              f"{args.iters} timed iterations after {args.warmup} warm-up, x{args.rounds} rounds, "
              f"loader workers: {workers}\n", flush=True)
        cases = [(s, a, v) for s in args.slices for a in amps for v in args.variants]
        blocks = []
        for rnd in range(args.rounds):
            for s, a, v in (cases if rnd % 2 == 0 else cases[::-1]):
                t0 = time.perf_counter()
                b = run_block(v, s, a, args, data_root)
                print(f"  {v} x{s} amp {'on' if a else 'off'}: {len(b['iter_times_s'])} iterations, "
                      f"{time.perf_counter() - t0:.1f} s with build and warm-up", flush=True)
                blocks.append(b)
    rows = summarise(blocks, args.batch_size)
    print("\n" + format_table(rows))
    print("time vs 3D: iteration time over the plain 3D detector's at the same slices and AMP "
          "(target for AlignShift at the paper's settings: <= 1.05x)")
    if args.json:
        out = dict(format="alignshift-bench-train/1", machine=info, notes=notes,
                   settings=dict(device=str(args.device), image_size=args.image_size,
                                 batch_size=args.batch_size, iters=args.iters, warmup=args.warmup,
                                 rounds=args.rounds, compile=args.compile, workers=args.workers,
                                 data_root=args.data_root, num_images=args.num_images,
                                 cfg_options=args.cfg_options),
                   results=rows)
        tmp_path = args.json + ".tmp"
        with open(tmp_path, "w") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp_path, args.json)
        print(f"raw results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
