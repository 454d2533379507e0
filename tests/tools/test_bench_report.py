"""benchmarks/bench_report.py, run small: the report's size and its share of the detection run."""

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_report_prints_size_and_share_of_the_run():
    pytest.importorskip("mmdet")
    cmd = [sys.executable, "benchmarks/bench_report.py",
           "--config", "configs/demo/alignshift_3slice_synthetic.py",
           "--size", "64", "--volume-slices", "6", "--slices", "1", "--threads", "1"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert re.search(r"detector \S+ \(3 slices, sampler deeplesion\): [\d.]+ s per key slice", out)
    assert re.search(r"report: [\d.]+ MB \(limit 25 MB\), png, 64 x 64 images \(downsampled 1x\), "
                     r"\d+ candidates", out)
    assert re.search(r"report cost: [\d.]+ % of the detection run", out)
