"""benchmarks/bench_infer.py, run small: the command of docs/inference.md's "Speed" section."""

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

pytest.importorskip("mmdet")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_infer_measures_a_whole_small_volume():
    cmd = [sys.executable, "benchmarks/bench_infer.py",
           "--config", "configs/demo/alignshift_3slice_synthetic.py", "--size", "64",
           "--volume-slices", "5", "--slices", "5", "--threads", "1",
           "--cfg-options", "model.test_cfg.rpn.max_per_img=40"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert "measured for 5 slices" in out  # every slice run: measured, not extrapolated
    assert re.search(r"detector: [\d.]+ s wall, [\d.]+ s CPU", out)
    m = re.search(r"proposals into the RoI head: (\d+) per key slice "
                  r"\(cap test_cfg.rpn.max_per_img = 40\)", out)
    assert m and int(m.group(1)) <= 40  # the override reached the model
