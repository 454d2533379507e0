"""Timing and peak-memory helpers shared by the benchmarks."""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Callable, Dict, Optional

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def positive_int(text: str) -> int:
    """argparse type for counts such as ``--repeats``: a median needs at least one round."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _check_repeats(repeats: int) -> None:
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1 to take a median, got {repeats}")


def interleaved_times(fns: Dict[str, Callable[[], None]], device: torch.device, repeats: int,
                      warmup: int = 2) -> Dict[str, float]:
    """Median wall time of each function, run in alternating rounds so that drift in machine
    load hits every variant alike."""
    _check_repeats(repeats)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    times: Dict[str, list] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _proc_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(field)


def peak_bytes(fn: Callable[[], None], device: torch.device) -> Optional[int]:
    """Extra memory at the peak of ``fn`` over what was alive before it.

    CUDA: the caching allocator's peak. CPU (Linux): the process' peak resident set (VmHWM,
    reset through /proc/self/clear_refs) minus the resident set before. This tracks live tensors
    only when glibc returns freed blocks at once: run with ``MALLOC_MMAP_THRESHOLD_=65536``
    (which slows allocation, so time in another process). None where unavailable.
    """
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _proc_kib("VmRSS")
        fn()
        return (_proc_kib("VmHWM") - base) * 1024
    except OSError:
        return None


def kernel_times(fns: Dict[str, Callable[[], None]], device: torch.device,
                 steps: int = 10) -> Optional[Dict[str, float]]:
    """CUDA: seconds of GPU kernel time per call of each function, from ``torch.profiler``.

    This is what a step costs when the host keeps the GPU busy (large inputs, CUDA graphs); the
    wall time of small steps is mostly host time spent launching. None off CUDA or where the
    profiler cannot see the device.
    """
    if device.type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    out = {}
    for name, fn in fns.items():
        fn()
        torch.cuda.synchronize(device)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(steps):
                fn()
            torch.cuda.synchronize(device)
        total_us = sum(e.self_device_time_total for e in prof.key_averages())
        if total_us <= 0:
            return None
        out[name] = total_us * 1e-6 / steps
    return out
