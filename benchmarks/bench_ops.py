"""Cost of the depth shifts: AlignShiftConv and TSMConv vs the plain 1xKxK conv, side by side.

    python benchmarks/bench_ops.py [--repeats 7] [--device cpu|cuda] [--skip-backbone]

DenseNet-like shapes: B=2, D=7, C_in in {128, 256, 512}, H=W in {32, 64}; kernel 1 maps C_in to
128 (the bottleneck), kernel 3 maps C_in to 32 (the growth rate). Forward+backward time (median of
interleaved rounds) and peak memory, as ratios to the plain conv measured in the same run. Then
the whole AlignShift (and TSM) backbone vs the plain 3D backbone at 3x256x256 and 7x256x256.

On CPU, memory is measured in a child process run with ``MALLOC_MMAP_THRESHOLD_=65536`` so that
the resident set follows live tensors (see ``_measure.peak_bytes``); times come from this process.
With glibc's defaults every freed tensor above 32 MiB goes back to the OS and page-faults in again
on the next step, which costs the shifting convs (two extra input-sized buffers per step) more
than the plain one. To time with a heap that keeps its memory, as jemalloc/tcmalloc would:

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184 python benchmarks/bench_ops.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _measure import interleaved_times, peak_bytes  # noqa: E402

from alignshift.models import DenseNetBackbone3D  # noqa: E402
from alignshift.nn import AlignShiftConv, Conv1xKxK, TSMConv  # noqa: E402

VARIANTS = (("plain", Conv1xKxK, "plain"), ("tsm", TSMConv, "tsm"),
            ("align", AlignShiftConv, "alignshift"))
CONV_SHAPES = [(c, hw, k, cout) for c in (128, 256, 512) for hw in (32, 64)
               for k, cout in ((1, 128), (3, 32))]


def conv_cases(device):
    thickness = torch.tensor([1.25, 5.0], device=device)
    for c, hw, k, cout in CONV_SHAPES:
        x = torch.randn(2, c, 7, hw, hw, device=device, requires_grad=True)
        torch.manual_seed(0)
        mods = {n: cls(c, cout, k, padding=k // 2, bias=False).to(device) for n, cls, _ in VARIANTS}
        for m in mods.values():
            m.weight.data.copy_(mods["plain"].weight.data)

        def step(m, x=x):
            def run():
                m.zero_grad(set_to_none=True)
                x.grad = None
                m(x, thickness).sum().backward()
            return run
        yield f"{c}/{hw}/{k}/{cout}", {n: step(m) for n, m in mods.items()}


def backbone_cases(device):
    thickness = torch.tensor([1.25, 5.0], device=device)
    for d in (3, 7):
        x = torch.randn(2, d, 256, 256, device=device)
        torch.manual_seed(0)
        nets = {n: DenseNetBackbone3D(conv, num_slices=d).to(device) for n, _, conv in VARIANTS}
        for m in nets.values():
            m.load_state_dict(nets["plain"].state_dict())

        def step(m, x=x):
            def run():
                m.zero_grad(set_to_none=True)
                m(x, thickness).sum().backward()
            return run
        yield f"{d}x256x256", {n: step(m) for n, m in nets.items()}


def memory_table(device, with_backbone):
    """{case: {variant: peak bytes}}, measured here (CUDA) or in a child process (CPU)."""
    if device.type == "cpu" and os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        # a heap that keeps freed memory would hide frees from the resident set
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
        args = [sys.executable, __file__, "--memory-json", "--device", "cpu"]
        if not with_backbone:
            args.append("--skip-backbone")
        out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    table = {}
    cases = list(conv_cases(device)) + (list(backbone_cases(device)) if with_backbone else [])
    for name, fns in cases:
        for fn in fns.values():
            fn()  # warm-up: lazily created buffers
        table[name] = {n: peak_bytes(fn, device) for n, fn in fns.items()}
    return table


def track_worst(worst: dict, kind: str, t: dict, m: dict) -> None:
    """Fold one case's time and memory ratios (tsm, align vs plain) into ``worst``."""
    for v in ("tsm", "align"):
        worst[f"{kind} time"] = max(worst[f"{kind} time"], t[v] / t["plain"])
        if m[v] is not None and m["plain"]:
            worst[f"{kind} memory"] = max(worst[f"{kind} memory"], m[v] / m["plain"])


def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--skip-backbone", action="store_true")
    ap.add_argument("--memory-json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.memory_json:
        print(json.dumps(memory_table(device, not args.skip_backbone)))
        return
    malloc = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}"
          + (f", glibc malloc tuned: {malloc}" if malloc and device.type == "cpu" else ""))
    mem = memory_table(device, not args.skip_backbone)
    worst = {"op time": 0.0, "op memory": 0.0, "backbone time": 0.0, "backbone memory": 0.0}

    print(f"\nconvs: B=2, D=7; fwd+bwd time (median of {args.repeats}) and peak memory vs plain")
    print(f"{'C_in/HW/k/C_out':>16} | {'plain ms':>9} {'tsm':>6} {'align':>6} | "
          f"{'plain MiB':>9} {'tsm':>6} {'align':>6}")
    for name, fns in conv_cases(device):
        t = interleaved_times(fns, device, args.repeats)
        m = mem[name]
        track_worst(worst, "op", t, m)
        print(f"{name:>16} | {1e3 * t['plain']:9.2f} {t['tsm'] / t['plain']:5.2f}x "
              f"{t['align'] / t['plain']:5.2f}x | {(m['plain'] or 0) / 2**20:9.1f} "
              f"{ratio(m['tsm'], m['plain']):>6} {ratio(m['align'], m['plain']):>6}")
    if not args.skip_backbone:
        reps = max(2, args.repeats // 2)
        print(f"\nbackbones: truncated DenseNet-121, B=2, fwd+bwd (median of {reps}) vs plain 3D")
        for name, fns in backbone_cases(device):
            t = interleaved_times(fns, device, reps, warmup=1)
            m = mem[name]
            track_worst(worst, "backbone", t, m)
            print(f"{name:>10}: plain {t['plain']:.3f} s, {(m['plain'] or 0) / 2**20:.0f} MiB | "
                  f"tsm {t['tsm'] / t['plain']:.2f}x time, {ratio(m['tsm'], m['plain'])} memory | "
                  f"alignshift {t['align'] / t['plain']:.2f}x time, "
                  f"{ratio(m['align'], m['plain'])} memory")
    print("\nworst ratios (targets: time <= 1.10x, memory <= 1.25x): "
          + ", ".join(f"{k} {v:.2f}x" for k, v in worst.items() if v))


if __name__ == "__main__":
    main()
