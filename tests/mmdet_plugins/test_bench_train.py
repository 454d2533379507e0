"""benchmarks/bench_train.py and tools/airgap_gpu_check.sh, run tiny on the CPU.

The GPU command lines of docs/gpu.md are run here with CPU stand-ins: the same scripts and steps,
64-px images, no AMP (it needs CUDA) and the installed packages instead of the carried bundle.
"""

import importlib.util
import json
import os
import subprocess
import sys
import tarfile

import pytest

pytestmark = pytest.mark.e2e

pytest.importorskip("mmdet")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def bench_train():
    spec = importlib.util.spec_from_file_location(
        "bench_train", os.path.join(ROOT, "benchmarks", "bench_train.py"))
    mod = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as mp:  # its sibling _measure.py, as `python benchmarks/...` sees it
        mp.syspath_prepend(os.path.join(ROOT, "benchmarks"))
        spec.loader.exec_module(mod)
    return mod


def test_bench_train_tiny_cpu(bench_train, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = bench_train.main(["--device", "cpu", "--image-size", "64", "--iters", "2", "--warmup", "0",
                           "--variants", "3d,2.5d", "--slices", "3", "--workers", "0",
                           "--num-images", "4", "--json", str(out), "--cfg-options",
                           "model.roi_head.bbox_head.fc_out_channels=256"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "AMP skipped" in text  # --amp both on a CPU: only AMP off, with a note
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["format"] == "alignshift-bench-train/1"
    assert data["settings"]["image_size"] == 64 and data["notes"]
    rows = data["results"]
    assert [(r["variant"], r["slices"], r["amp"]) for r in rows] == [("3d", 3, False), ("2.5d", 3, False)]
    for r in rows:
        assert len(r["iter_times_s"]) == len(r["data_times_s"]) == 2
        assert r["iters_per_s"] > 0 and r["images_per_s"] == pytest.approx(2 * r["iters_per_s"])
        assert 0 < r["data_share"] < 1 and r["losses_finite"]
        assert r["peak_memory_bytes"] is None  # GPU memory only
        # the table row: the variant with its ratio to the plain 3D detector
        assert any(line.split()[2:3] == [r["variant"]] and f"{r['time_vs_3d']:.2f}x" in line
                   for line in text.splitlines())
    assert rows[0]["time_vs_3d"] == 1.0 and rows[1]["time_vs_3d"] > 0
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("argv, message", [
    (["--variants", "3d,foo"], "--variants: unknown ['foo']"),
    (["--slices", "4"], "--slices: odd counts"),
    (["--device", "cpu", "--amp", "on"], "--amp on needs --device cuda"),
    (["--json", "/nonexistent/dir/out.json"], "does not exist or is not writable"),
])
def test_bench_train_usage_errors(bench_train, argv, message, capsys):
    from alignshift.apps.cli import run_cli

    assert run_cli(bench_train.main, argv, prog="bench_train.py") in (1, 2)
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err


def test_airgap_gpu_check_dry_run_on_cpu(tmp_path):
    """tools/airgap_gpu_check.sh's train and bench steps (synthetic data, train, test, FROC, the
    benchmark on those data) with CPU stand-ins."""
    # seed 7: 6 images give 2 train (1 iteration), 2 val and 2 test images; a smaller box head
    small = "model.roi_head.bbox_head.fc_out_channels=256"
    env = dict(os.environ, OUT=str(tmp_path / "out"), WORK_DIR=str(tmp_path / "work"),
               DATA_DIR=str(tmp_path / "data" / "DeepLesion"), BUNDLE="none", AMP="",
               PYTHON=sys.executable, IMAGE_SIZE="64", NUM_IMAGES="6", SEED="7", EPOCHS="1",
               TRAIN_OPTS="train_dataloader.dataset.pipeline.2.scale=(64,64) "
                          f"train_dataloader.num_workers=0 train_dataloader.persistent_workers=False {small} "
                          "val_cfg=None val_dataloader=None val_evaluator=None",  # no validation
               TEST_OPTS="test_dataloader.dataset.pipeline.1.scale=(64,64) "
                         f"test_dataloader.num_workers=0 test_dataloader.persistent_workers=False {small}",
               BENCH_DEVICE="cpu", BENCH_ITERS="1", BENCH_WARMUP="0", BUDGET_S="3000",
               BENCH_ARGS=f"--variants 3d --slices 3 --workers 0 --cfg-options {small}")
    r = subprocess.run(["bash", "tools/airgap_gpu_check.sh", "train,bench"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    log = (tmp_path / "out" / "gpu_check.log").read_text(encoding="utf-8")
    assert r.returncode == 0, log[-3000:]
    for step in ("train: rc=0", "test: rc=0", "froc: rc=0", "synthetic-data: rc=0", "bench: rc=0"):
        assert step in log, log[-3000:]
    assert "build-mmcv-cuda" not in log  # mmcv is there: no build asked for
    assert (tmp_path / "work" / "epoch_1.pth").exists()
    assert (tmp_path / "work" / "froc" / "froc.json").exists()
    bench = json.loads((tmp_path / "out" / "bench_train.json").read_text(encoding="utf-8"))
    assert bench["settings"]["data_root"] == env["DATA_DIR"]  # the training data, reused
    assert [r["variant"] for r in bench["results"]] == ["3d"]
    with tarfile.open(tmp_path / "out" / "e2e.tar.gz") as tar:
        names = tar.getnames()
    assert "work/test/predictions.json" in names and not any(n.endswith(".pth") for n in names)
