"""Cost of the depth shifts: AlignShiftConv and TSMConv vs the plain 1xKxK conv, side by side.

    python benchmarks/bench_ops.py [--repeats 5] [--device cpu|cuda] [--skip-backbone]

DenseNet-like shapes: B=2, D=7, C_in in {128, 256, 512}, H=W in {32, 64}; kernel 1 maps C_in to
128 (the bottleneck), kernel 3 maps C_in to 32 (the growth rate). Forward+backward time (median)
and peak memory, as ratios to the plain conv measured in the same process. Then the whole
AlignShift backbone vs the plain 3D backbone at 3x256x256 and 7x256x256.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _measure import median_time, peak_bytes  # noqa: E402

from alignshift.models import DenseNetBackbone3D  # noqa: E402
from alignshift.nn import AlignShiftConv, Conv1xKxK, TSMConv  # noqa: E402


def step(module, x, thickness):
    def run():
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x, thickness).sum().backward()
    return run


def fmt_mem(b):
    return "n/a" if b is None else f"{b / 2**20:7.1f}"


def ratio(a, b):
    return "n/a" if a is None or b is None or b <= 0 else f"{a / b:.2f}x"


def bench_convs(device, repeats):
    print(f"\nconvs on {device}: B=2, D=7, time = median fwd+bwd of {repeats}; memory = peak MiB")
    print(f"{'C_in':>5} {'HW':>3} {'k':>2} {'C_out':>5} | {'plain ms':>9} {'tsm':>7} {'align':>7} | "
          f"{'plain MiB':>9} {'tsm':>6} {'align':>6}")
    worst_t, worst_m = 0.0, 0.0
    thickness = torch.tensor([1.25, 5.0], device=device)
    for c in (128, 256, 512):
        for hw in (32, 64):
            for k, cout in ((1, 128), (3, 32)):
                x = torch.randn(2, c, 7, hw, hw, device=device, requires_grad=True)
                mods = {name: cls(c, cout, k, padding=k // 2, bias=False).to(device)
                        for name, cls in (("plain", Conv1xKxK), ("tsm", TSMConv),
                                          ("align", AlignShiftConv))}
                for m in mods.values():
                    m.weight.data.copy_(mods["plain"].weight.data)
                t = {n: median_time(step(m, x, thickness), device, repeats) for n, m in mods.items()}
                mem = {n: peak_bytes(step(m, x, thickness), device) for n, m in mods.items()}
                for n in ("tsm", "align"):
                    worst_t = max(worst_t, t[n] / t["plain"])
                    if mem[n] is not None and mem["plain"]:
                        worst_m = max(worst_m, mem[n] / mem["plain"])
                print(f"{c:>5} {hw:>3} {k:>2} {cout:>5} | {1e3 * t['plain']:9.2f} "
                      f"{t['tsm'] / t['plain']:6.2f}x {t['align'] / t['plain']:6.2f}x | "
                      f"{fmt_mem(mem['plain']):>9} {ratio(mem['tsm'], mem['plain']):>6} "
                      f"{ratio(mem['align'], mem['plain']):>6}")
    print(f"worst op ratio: time {worst_t:.2f}x (target <= 1.10x), memory {worst_m:.2f}x "
          "(target <= 1.25x)")


def bench_backbones(device, repeats):
    print(f"\nbackbones on {device}: B=2, fwd+bwd, AlignShift vs plain 3D DenseNet-121 (truncated)")
    for d in (3, 7):
        x = torch.randn(2, d, 256, 256, device=device)
        thickness = torch.tensor([1.25, 5.0], device=device)
        torch.manual_seed(0)
        plain = DenseNetBackbone3D("plain", num_slices=d).to(device)
        align = DenseNetBackbone3D("alignshift", num_slices=d).to(device)
        align.load_state_dict(plain.state_dict())

        def run(m, x=x, thickness=thickness):
            def f():
                m.zero_grad(set_to_none=True)
                m(x, thickness).sum().backward()
            return f
        tp, ta = (median_time(run(m), device, repeats, warmup=1) for m in (plain, align))
        mp, ma = (peak_bytes(run(m), device) for m in (plain, align))
        print(f"{d}x256x256: plain {tp:.3f} s, alignshift {ta:.3f} s -> time {ta / tp:.2f}x "
              f"(target <= 1.10x); peak memory plain {fmt_mem(mp)} MiB, alignshift {fmt_mem(ma)} "
              f"MiB -> {ratio(ma, mp)} (target <= 1.25x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--skip-backbone", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    bench_convs(device, args.repeats)
    if not args.skip_backbone:
        bench_backbones(device, max(1, args.repeats // 2))


if __name__ == "__main__":
    main()
