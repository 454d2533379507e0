"""benchmarks/bench_ops.py --launches-only and benchmarks/bench_compile.py, run as a user runs them."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args, timeout=900):
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


def test_launch_counts():
    """Kernels per forward + backward of one conv: the plain conv runs 1 + 2 (the conv; its input
    and weight gradients), a shifting conv on the Triton path 3 more (the shift, its recompute for
    the weight gradient, the adjoint), and nothing per call beyond those: no weights tensor for
    TSM, no cast of the float32 shift weights."""
    pytest.importorskip("triton")
    out = _run("benchmarks/bench_ops.py", "--device", "cpu", "--launches-only")
    triton = out.split("Triton shift (the CUDA path):")[1]
    for case in ("D=3 float32", "D=7 float32"):
        row = next(line for line in triton.splitlines() if case in line)
        assert re.search(r"plain 1\+2 \[1\+1\] 1\.00x", row), row
        assert re.search(r"tsm 2\+4 .* 2\.00x", row) and re.search(r"align 2\+4 .* 2\.00x", row), row
    for case in ("D=3 bf16 autocast", "D=7 bf16 autocast"):  # + the weight cast and its gradient's
        row = next(line for line in triton.splitlines() if case in line)
        assert re.search(r"plain 2\+3 .* 1\.00x", row) and re.search(r"align 3\+5 .* 1\.60x", row), row
    assert "worst launch ratio, Triton path: 2.00x" in out


@pytest.mark.slow
def test_bench_compile_runs():
    out = _run("benchmarks/bench_compile.py", "--size", "32", "--repeats", "1", timeout=1800)
    assert re.search(r"alignshift / plain: eager \d+\.\d+x, compiled \d+\.\d+x", out), out
