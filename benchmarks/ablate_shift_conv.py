"""Where the time of a shifting 1x1 conv goes on CPU: the op with parts swapped for stand-ins.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184 python benchmarks/ablate_shift_conv.py

Times one fwd+bwd step of AlignShiftConv (B=2, D=7, kernel 1, C_in -> 128) against the plain
1x1x1 conv, side by side in interleaved rounds, with these variants of the AlignShift op:

- ``full``: the op as shipped;
- ``no adjoint``: the in-place adjoint on the input gradient skipped;
- ``clone``: each shift (forward, and the recompute for the weight gradient) replaced by a bare
  ``x.clone()``, the least that materialising an input-sized copy can cost;
- ``no shift/adjoint``: both left out, so what remains is the autograd Function, two
  conv-backward calls and the Python around them.

The stand-ins give wrong values; they only show what each part costs inside a step. The README's
"Where the CPU time goes" table comes from this script.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Callable, Dict
from unittest import mock

import torch
from _measure import interleaved_times, positive_int

from alignshift import ops
from alignshift.nn import AlignShiftConv, Conv1xKxK


def _clone(x, a, fold, replicate, kernels=None):
    return x.clone(memory_format=torch.contiguous_format)


def _as_is(x, a, fold, replicate, kernels=None):
    return x.contiguous()


def _skip(g, a, fold, replicate, kernels=None):
    return g


STAND_INS: Dict[str, dict] = {
    "full": {},
    "no adjoint": {"_adjoint_inplace": _skip},
    "clone": {"_shift_forward": _clone},
    "no shift/adjoint": {"_shift_forward": _as_is, "_adjoint_inplace": _skip},
}


def _steps(c_in: int, hw: int) -> Dict[str, Callable[[], None]]:
    x = torch.randn(2, c_in, 7, hw, hw, requires_grad=True)
    thickness = ops.SliceThickness([1.25, 5.0], 2)
    plain = Conv1xKxK(c_in, 128, 1, bias=False)
    shifting = AlignShiftConv(c_in, 128, 1, bias=False)
    shifting.weight.data.copy_(plain.weight.data)

    def plain_step() -> None:
        x.grad = None
        plain.zero_grad(set_to_none=True)
        plain(x).sum().backward()

    def variant(patches: dict) -> Callable[[], None]:
        def step() -> None:
            x.grad = None
            shifting.zero_grad(set_to_none=True)
            with mock.patch.multiple(ops, **patches) if patches else contextlib.nullcontext():
                shifting(x, thickness).sum().backward()
        return step

    return {"plain": plain_step, **{name: variant(p) for name, p in STAND_INS.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=20)
    args = parser.parse_args()
    device = torch.device("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; AlignShiftConv 1x1, "
          f"B=2, D=7, C_in -> 128, fwd+bwd time vs plain (median of {args.repeats})")
    print(f"{'C_in/HW':>8} | {'plain ms':>8} | " + " | ".join(f"{n:>16}" for n in STAND_INS))
    for hw in (32, 64):
        for c_in in (128, 256, 512):
            t = interleaved_times(_steps(c_in, hw), device, args.repeats, warmup=3)
            ratios = " | ".join(f"{t[n] / t['plain']:>15.2f}x" for n in STAND_INS)
            print(f"{c_in:>5}/{hw:<2} | {t['plain'] * 1e3:>8.2f} | {ratios}", flush=True)


if __name__ == "__main__":
    main()
