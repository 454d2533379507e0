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


def test_bench_infer_zoo_model_with_the_report():
    """``--model alignshift_7slice``: a converted fixture snapshot, the report timed beside the run."""
    cmd = [sys.executable, "benchmarks/bench_infer.py", "--model", "alignshift_7slice", "--size", "64",
           "--volume-slices", "4", "--slices", "4", "--threads", "1",
           "--cfg-options", "model.test_cfg.rpn.max_per_img=20",
           "test_dataloader.dataset.pipeline.1.scale=(64,64)"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert "weights: a fixture snapshot of alignshift_7slice (the published layout, random weights" in out
    assert "sampler='v1'" in out and "measured for 4 slices" in out
    assert "(target <= 12 min on 2 CPU cores for a 7-slice model)" in out
    assert re.search(r"report: [\d.]+ MB \(limit 25 MB\), png, 64 x 64 images \(downsampled 1x\), "
                     r"written in", out)
    assert re.search(r"report cost: [\d.]+ % of the measured run \(target <= 10 %\)", out)
