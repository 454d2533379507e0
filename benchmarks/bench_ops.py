"""Cost of the depth shifts: AlignShiftConv and TSMConv vs the plain 1xKxK conv, side by side.

    python benchmarks/bench_ops.py [--repeats 7] [--device cpu|cuda] [--skip-backbone]
                                   [--compile default|reduce-overhead|...] [--launches-only]

DenseNet-like shapes: B=2, D=7, C_in in {128, 256, 512}, H=W in {32, 64}; kernel 1 maps C_in to
128 (the bottleneck), kernel 3 maps C_in to 32 (the growth rate). Forward+backward time (median of
interleaved rounds) and peak memory, as ratios to the plain conv measured in the same run. Then
the whole AlignShift (and TSM) backbone vs the plain 3D backbone at 3x256x256 and 7x256x256.

On CUDA it adds: the GPU kernel time per step (torch.profiler), since at these sizes wall time
is mostly the host launching kernels; a column ``(ops)`` with the shift as torch ops instead of
the Triton kernels; and a B=4 7x512x512 backbone, a size at which the GPU sets the pace.

``--compile MODE`` runs every module (plain ones too) through ``torch.compile(mode=MODE)`` first;
on a GPU ``reduce-overhead`` (CUDA graphs) takes the host's launch time out of a step. Compiling
happens in the warm-up rounds; on CPU a backbone takes a few minutes, twice (the memory child).

First, the launches: per forward and per backward of one conv (B=2, C_in=16, 8x8, D = 3 and
7), how many kernels each variant runs against the plain conv, in float32 and under bfloat16
autocast (input already bfloat16, as inside a network), for the shift as Triton kernels (the
CUDA path) and as torch ops (CPU, or CUDA without Triton). Counted per aten op dispatched
(views, allocations without a fill and metadata ops run no kernel and are not counted) plus one
per Triton launch; a ``convolution_backward`` counts one kernel per gradient it computes
(cuDNN runs the input and the weight gradient as separate kernels, in one call or two). On CPU
the Triton path runs under ``TRITON_INTERPRET=1`` in a child process. On CUDA the table adds the
kernels the profiler saw. Target: <= 1.5x the plain conv's. ``--launches-only`` stops there.

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
from typing import Dict, Optional
from unittest import mock

import torch
from _measure import interleaved_times, kernel_times, peak_bytes, positive_int
from torch.utils._python_dispatch import TorchDispatchMode

from alignshift.models import DenseNetBackbone3D
from alignshift.nn import AlignShiftConv, Conv1xKxK, TSMConv
from alignshift.ops import SliceThickness, shift_backend

_aten = torch.ops.aten
# dispatched ops that run no kernel: allocations without a fill, and metadata
_NO_KERNEL = {_aten.empty.memory_format, _aten.empty_like.default, _aten.empty_strided.default,
              _aten.new_empty.default, _aten.new_empty_strided.default, _aten.detach.default,
              _aten.lift_fresh.default, _aten.alias.default}

# (name, conv class, converter name, shift backend)
VARIANTS = (("plain", Conv1xKxK, "plain", "auto"), ("tsm", TSMConv, "tsm", "auto"),
            ("align", AlignShiftConv, "alignshift", "auto"))
# on CUDA, AlignShift with the shift as torch ops too, to show what the Triton kernels buy
TORCH_OPS = ("align-ops", AlignShiftConv, "alignshift", "torch")


CONV_SHAPES = [(c, hw, k, cout) for c in (128, 256, 512) for hw in (32, 64)
               for k, cout in ((1, 128), (3, 32))]


def variants(device):
    return VARIANTS + ((TORCH_OPS,) if device.type == "cuda" else ())


def _compiled(m, mode: Optional[str]):
    return m if mode is None else torch.compile(m, mode=None if mode == "default" else mode)


def conv_cases(device, compile_mode: Optional[str] = None):
    # validated and placed on the device once, as a converted network does once per forward
    thickness = SliceThickness([1.25, 5.0], 2)
    for c, hw, k, cout in CONV_SHAPES:
        x = torch.randn(2, c, 7, hw, hw, device=device, requires_grad=True)
        torch.manual_seed(0)
        vs = variants(device)
        mods = {n: cls(c, cout, k, padding=k // 2, bias=False).to(device) for n, cls, _, _ in vs}
        for m in mods.values():
            m.weight.data.copy_(mods["plain"].weight.data)
        mods = {n: _compiled(m, compile_mode) for n, m in mods.items()}

        def step(m, backend, x=x):
            def run():
                m.zero_grad(set_to_none=True)
                x.grad = None
                with shift_backend(backend):
                    m(x, thickness).sum().backward()
            return run
        yield f"{c}/{hw}/{k}/{cout}", {n: step(mods[n], be) for n, _, _, be in vs}


def backbone_cases(device, compile_mode: Optional[str] = None):
    cases = [(2, 3, 256), (2, 7, 256)]
    if device.type == "cuda":  # also a size at which the GPU, not the host, sets the pace
        cases.append((4, 7, 512))
    for b, d, hw in cases:
        thickness = torch.tensor([1.25, 5.0] * (b // 2))  # host values, as the detector passes them
        x = torch.randn(b, d, hw, hw, device=device)
        torch.manual_seed(0)
        vs = variants(device)
        nets = {n: DenseNetBackbone3D(conv, num_slices=d).to(device) for n, _, conv, _ in vs}
        for m in nets.values():
            m.load_state_dict(nets["plain"].state_dict())
        nets = {n: _compiled(m, compile_mode) for n, m in nets.items()}

        def step(m, backend, x=x, thickness=thickness):
            def run():
                m.zero_grad(set_to_none=True)
                with shift_backend(backend):
                    m(x, thickness).sum().backward()
            return run
        yield (f"{d}x{hw}x{hw}" if b == 2 else f"B={b} {d}x{hw}x{hw}"), \
            {n: step(nets[n], be) for n, _, _, be in vs}


class LaunchCounter(TorchDispatchMode):
    """Counts the kernels a step runs: aten ops that compute (not views, not bare allocations),
    a ``convolution_backward`` once per gradient it returns, and Triton launches (counted by
    :meth:`count_triton`; the aten ops of Triton's CPU interpreter are not counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.kernels = self.allocations = 0
        self._paused = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self._paused or func.is_view or func in _NO_KERNEL:
            if func in _NO_KERNEL and func is not _aten.detach.default and not self._paused:
                self.allocations += 1
            return out
        if func is _aten.convolution_backward.default:
            self.kernels += sum(bool(m) for m in args[-1])
        else:
            self.kernels += 1
        if not func._schema.is_mutable and isinstance(out, (torch.Tensor, tuple)):
            self.allocations += 1  # a functional op returns new storage
        return out

    def count_triton(self, launch):
        def counted(*args, **kwargs):
            self.kernels += 1
            self._paused = True
            try:
                return launch(*args, **kwargs)
            finally:
                self._paused = False
        return counted


def _cuda_kernels(fn, device) -> Optional[int]:
    """Kernels the CUDA profiler saw during ``fn()``; None off CUDA."""
    if device.type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize(device)
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def _count_launches(cls, device, backend: str, depth: int, autocast: bool, thickness) -> list:
    """[fwd kernels, bwd kernels, fwd allocations, bwd allocations, fwd CUDA kernels, bwd CUDA
    kernels] of one conv of class ``cls``."""
    import alignshift._shift_triton as kernels_module  # needs Triton

    torch.manual_seed(0)
    m = cls(16, 16, 3, padding=1, bias=False).to(device)
    x = torch.randn(2, 16, depth, 8, 8, device=device,
                    dtype=torch.bfloat16 if autocast else torch.float32).requires_grad_()

    def fwd():
        with shift_backend(backend), torch.autocast(device.type, torch.bfloat16, enabled=autocast):
            return m(x, thickness)

    y = fwd()  # warm-up: caches, Triton compilation
    grad = torch.ones_like(y)
    y.backward(grad)
    counts = []
    for step in ("forward", "backward"):
        x.grad = m.weight.grad = None  # as after zero_grad(set_to_none=True): no accumulation
        counter = LaunchCounter()
        with mock.patch.object(kernels_module, "_launch", counter.count_triton(kernels_module._launch)):
            with counter:
                if step == "forward":
                    y = fwd()
                else:
                    y.backward(grad)
        counts.append((counter.kernels, counter.allocations))
    cuda_fwd = _cuda_kernels(fwd, device)
    y = fwd()
    x.grad = m.weight.grad = None
    cuda_bwd = _cuda_kernels(lambda: y.backward(grad), device)
    return [counts[0][0], counts[1][0], counts[0][1], counts[1][1], cuda_fwd, cuda_bwd]


def launch_table(device, backend: str) -> Dict[str, Dict[str, list]]:
    """{f"D={d} {precision}": {variant: :func:`_count_launches`}} for one shift backend ('torch'
    or 'triton')."""
    thickness = SliceThickness([1.25, 5.0], 2)
    table = {}
    for depth in (3, 7):
        for precision in ("float32", "bf16 autocast"):
            table[f"D={depth} {precision}"] = {
                name: _count_launches(cls, device, backend, depth, precision != "float32", thickness)
                for name, cls, _, _ in VARIANTS}
    return table


def launch_tables(device) -> Dict[str, dict]:
    """{backend: launch_table}: Triton in a child process with TRITON_INTERPRET=1 on CPU."""
    out = {"torch": launch_table(device, "torch")}
    if device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1":
        try:
            out["triton"] = launch_table(device, "triton")
        except ImportError:
            pass
        return out
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, __file__, "--launch-json", "--device", "cpu"], env=env,
                          capture_output=True, text=True)
    if proc.returncode == 0:
        out["triton"] = json.loads(proc.stdout.strip().splitlines()[-1])["triton"]
    return out


def print_launches(device) -> float:
    """Print the launch table; returns the worst Triton-path ratio to the plain conv."""
    tables = launch_tables(device)
    worst = 0.0
    print("\nkernel launches per conv (B=2, 16 -> 16 channels, 3x3, 8x8): forward + backward, "
          "ratio to the plain conv (target <= 1.5x); allocations in brackets")
    for backend, table in tables.items():
        label = "Triton shift (the CUDA path)" if backend == "triton" else "torch-op shift"
        print(f"  {label}:")
        for case, row in table.items():
            p = row["plain"]
            cells = []
            for name, (kf, kb, af, ab, cf, cb) in row.items():
                r = (kf + kb) / (p[0] + p[1])
                if backend == "triton" and name != "plain":
                    worst = max(worst, r)
                cuda = f", CUDA {cf}+{cb}" if cf is not None else ""
                cells.append(f"{name} {kf}+{kb} [{af}+{ab}]{cuda} {r:.2f}x")
            print(f"    {case:>18}: " + " | ".join(cells))
    if "triton" not in tables:
        print("  (Triton not importable here: no Triton-path counts)")
    return worst


def memory_table(device, with_backbone, compile_mode: Optional[str] = None):
    """{case: {variant: peak bytes}}, measured here (CUDA) or in a child process (CPU)."""
    if device.type == "cpu" and os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        # a heap that keeps freed memory would hide frees from the resident set
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
        args = [sys.executable, __file__, "--memory-json", "--device", "cpu"]
        if not with_backbone:
            args.append("--skip-backbone")
        if compile_mode:
            args += ["--compile", compile_mode]
        out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    table = {}
    cases = list(conv_cases(device, compile_mode)) + (
        list(backbone_cases(device, compile_mode)) if with_backbone else [])
    for name, fns in cases:
        for _ in range(3 if compile_mode else 1):  # warm-up: buffers, compiling, CUDA graphs
            for fn in fns.values():
                fn()
        table[name] = {n: peak_bytes(fn, device) for n, fn in fns.items()}
    return table


def track_worst(worst: dict, kind: str, t: dict, m: Optional[dict]) -> None:
    """Fold one case's time (and memory, where given) ratios, tsm and align vs plain, into
    ``worst[f"{kind} time"]`` and ``worst[f"{kind} memory"]``."""
    for v in ("tsm", "align"):
        worst[f"{kind} time"] = max(worst[f"{kind} time"], t[v] / t["plain"])
        if m is not None and m[v] is not None and m["plain"]:
            worst[f"{kind} memory"] = max(worst[f"{kind} memory"], m[v] / m["plain"])


def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=positive_int, default=7)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--skip-backbone", action="store_true")
    ap.add_argument("--compile", metavar="MODE", default=None,
                    choices=["default", "reduce-overhead", "max-autotune",
                             "max-autotune-no-cudagraphs"],
                    help="torch.compile every module with this mode first")
    ap.add_argument("--launches-only", action="store_true",
                    help="print the kernel-launch counts and stop")
    ap.add_argument("--memory-json", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--launch-json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.memory_json:
        print(json.dumps(memory_table(device, not args.skip_backbone, args.compile)))
        return
    if args.launch_json:
        print(json.dumps({"triton": launch_table(device, "triton")}))
        return
    malloc = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}"
          + (f", glibc malloc tuned: {malloc}" if malloc and device.type == "cpu" else "")
          + (f", torch.compile mode {args.compile!r}" if args.compile else ""))
    worst_launches = print_launches(device)
    if args.launches_only:
        print(f"\nworst launch ratio, Triton path: {worst_launches:.2f}x (target <= 1.5x)")
        return
    mem = memory_table(device, not args.skip_backbone, args.compile)
    warmup = 3 if args.compile else 2
    worst = {"op time": 0.0, "op memory": 0.0, "op kernel time": 0.0, "backbone time": 0.0,
             "backbone memory": 0.0, "backbone kernel time": 0.0}

    print(f"\nconvs: B=2, D=7; fwd+bwd time (median of {args.repeats}) and peak memory vs plain")
    ops_col = device.type == "cuda"
    print(f"{'C_in/HW/k/C_out':>16} | {'plain ms':>9} {'tsm':>6} {'align':>6}"
          + (f" {'(ops)':>6}" if ops_col else "") + f" | {'plain MiB':>9} {'tsm':>6} {'align':>6}"
          + (f" {'(ops)':>6}" if ops_col else ""))
    kernel_rows = []
    for name, fns in conv_cases(device, args.compile):
        t = interleaved_times(fns, device, args.repeats, warmup=warmup)
        m = mem[name]
        track_worst(worst, "op", t, m)
        kt = kernel_times(fns, device)
        if kt:
            kernel_rows.append((name, kt))
        print(f"{name:>16} | {1e3 * t['plain']:9.2f} {t['tsm'] / t['plain']:5.2f}x "
              f"{t['align'] / t['plain']:5.2f}x"
              + (f" {t['align-ops'] / t['plain']:5.2f}x" if ops_col else "")
              + f" | {(m['plain'] or 0) / 2**20:9.1f} "
              f"{ratio(m['tsm'], m['plain']):>6} {ratio(m['align'], m['plain']):>6}"
              + (f" {ratio(m['align-ops'], m['plain']):>6}" if ops_col else ""))
    if kernel_rows:
        print("\nconvs, GPU kernel time per step (profiler; what a step costs once launches are "
              "hidden by enough work)")
        print(f"{'C_in/HW/k/C_out':>16} | {'plain us':>9} {'tsm':>6} {'align':>6} {'(ops)':>6}")
        for name, kt in kernel_rows:
            track_worst(worst, "op kernel", kt, None)
            print(f"{name:>16} | {1e6 * kt['plain']:9.1f} {kt['tsm'] / kt['plain']:5.2f}x "
                  f"{kt['align'] / kt['plain']:5.2f}x {kt['align-ops'] / kt['plain']:5.2f}x")
    if not args.skip_backbone:
        reps = max(2, args.repeats // 2)
        print(f"\nbackbones: truncated DenseNet-121, B=2 unless said, fwd+bwd (median of {reps}) vs plain 3D")
        for name, fns in backbone_cases(device, args.compile):
            t = interleaved_times(fns, device, reps, warmup=warmup - 1)
            m = mem[name]
            track_worst(worst, "backbone", t, m)
            kt = kernel_times(fns, device, steps=3)
            print(f"{name:>10}: plain {t['plain']:.3f} s, {(m['plain'] or 0) / 2**20:.0f} MiB | "
                  f"tsm {t['tsm'] / t['plain']:.2f}x time, {ratio(m['tsm'], m['plain'])} memory | "
                  f"alignshift {t['align'] / t['plain']:.2f}x time, "
                  f"{ratio(m['align'], m['plain'])} memory"
                  + (f" | alignshift with torch-op shift {t['align-ops'] / t['plain']:.2f}x time"
                     if ops_col else ""))
            if kt:
                track_worst(worst, "backbone kernel", kt, None)
                print(f"{'':>10}  GPU kernel time: plain {1e3 * kt['plain']:.1f} ms | tsm "
                      f"{kt['tsm'] / kt['plain']:.2f}x | alignshift {kt['align'] / kt['plain']:.2f}x"
                      f" | with torch-op shift {kt['align-ops'] / kt['plain']:.2f}x")
    if ops_col:
        print("(ops): AlignShift with the shift as torch ops instead of Triton kernels; "
              "not in the worst ratios")
    print("\nworst ratios (targets: time <= 1.10x, memory <= 1.25x, launches <= 1.5x): "
          + ", ".join(f"{k} {v:.2f}x" for k, v in worst.items() if v)
          + (f", launches (Triton path) {worst_launches:.2f}x" if worst_launches else ""))


if __name__ == "__main__":
    main()
