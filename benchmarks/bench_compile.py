"""torch.compile against eager mode: plain 3D vs AlignShift (and TSM), side by side in one run.

    python benchmarks/bench_compile.py [--model resnet18|densenet] [--slices 3] [--size 64]
                                       [--batch 2] [--repeats 7] [--mode default] [--device cpu]
                                       [--tsm] [--no-layout-optimization]

Each variant is converted from the same 2D network with the same weights (``resnet18``: a
torchvision ResNet-18 through :func:`alignshift.converter.convert`; ``densenet``: the detector's
truncated DenseNet-121 backbone) and compiled with ``torch.compile(fullgraph=True)``: no graph
break. One step is forward + backward of ``output.sum()``; the four steps (eager and compiled,
plain and AlignShift; TSM with ``--tsm``) run interleaved, medians over ``--repeats`` rounds.
Printed: the compile time (first call, forward and backward), the median step of each, compiled
/ eager per variant, and AlignShift / plain in eager and in compiled mode. On a CPU Inductor needs
about a minute for ResNet-18 and several for the DenseNet backbone (each variant).

``--no-layout-optimization`` sets ``torch._inductor.config.layout_optimization = False``: by
default Inductor runs convolutions it sees (the plain ones; a shifting conv is an opaque custom
op to it) in channels-last layout, which for these 3D convs was slower on a CPU.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch._inductor.config as inductor_config
from _measure import interleaved_times, positive_int

from alignshift.converter import convert
from alignshift.models import DenseNetBackbone3D


def build(model: str, conv: str, slices: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if model == "densenet":
        return DenseNetBackbone3D(conv, num_slices=slices)
    import torchvision

    return convert(torchvision.models.resnet18(), conv=conv, in_channels=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["resnet18", "densenet"], default="resnet18")
    ap.add_argument("--slices", type=positive_int, default=3)
    ap.add_argument("--size", type=positive_int, default=64, help="height and width of the input")
    ap.add_argument("--batch", type=positive_int, default=2)
    ap.add_argument("--repeats", type=positive_int, default=7)
    ap.add_argument("--mode", default="default",
                    choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"])
    ap.add_argument("--tsm", action="store_true", help="also time TSM")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-layout-optimization", action="store_true",
                    help="keep Inductor from switching convolutions to channels-last")
    args = ap.parse_args()
    if args.no_layout_optimization:
        inductor_config.layout_optimization = False
    device = torch.device(args.device)
    convs = ["plain", "alignshift"] + (["tsm"] if args.tsm else [])
    nets = {c: build(args.model, c, args.slices).to(device) for c in convs}
    for net in nets.values():  # the same weights everywhere
        net.load_state_dict(nets["plain"].state_dict())
    thickness = torch.tensor([1.25, 5.0] * ((args.batch + 1) // 2))[:args.batch]
    if args.model == "densenet":
        x = torch.randn(args.batch, args.slices, args.size, args.size, device=device)
    else:
        x = torch.randn(args.batch, 1, args.slices, args.size, args.size, device=device)

    def step(net):
        def run():
            net.zero_grad(set_to_none=True)
            net(x, thickness).sum().backward()
        return run

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}; "
          f"{args.model}, B={args.batch}, {args.slices}x{args.size}x{args.size}, "
          f"torch.compile(fullgraph=True, mode={args.mode!r})"
          + (", Inductor layout optimization off" if args.no_layout_optimization else ""))
    fns = {}
    for c, net in nets.items():
        fns[f"{c} eager"] = step(net)
        compiled = torch.compile(net, fullgraph=True, mode=None if args.mode == "default" else args.mode)
        fns[f"{c} compiled"] = step(compiled)
        t0 = time.perf_counter()
        fns[f"{c} compiled"]()
        print(f"compiling {c}: {time.perf_counter() - t0:.1f} s (first forward + backward)", flush=True)
    t = interleaved_times(fns, device, args.repeats, warmup=2)
    print(f"\nmedian step (fwd+bwd) of {args.repeats} interleaved rounds:")
    for c in convs:
        e, k = t[f"{c} eager"], t[f"{c} compiled"]
        print(f"  {c:>10}: eager {1e3 * e:8.1f} ms, compiled {1e3 * k:8.1f} ms, "
              f"compiled / eager {k / e:.2f}x")
    for c in convs[1:]:
        print(f"  {c} / plain: eager {t[f'{c} eager'] / t['plain eager']:.2f}x, "
              f"compiled {t[f'{c} compiled'] / t['plain compiled']:.2f}x")


if __name__ == "__main__":
    main()
