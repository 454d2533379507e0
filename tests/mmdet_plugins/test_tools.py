"""tools/train.py, tools/test.py and tools/eval_froc.py as a user runs them."""

import json
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = "configs/demo/alignshift_3slice_synthetic.py"
TINY = ["train_dataloader.dataset.indices=4", "val_dataloader.dataset.indices=4",
        "test_dataloader.dataset.indices=4", "default_hooks.logger.interval=1",
        "train_cfg.val_interval=1", "default_hooks.checkpoint.interval=1",
        "default_hooks.checkpoint.max_keep_ckpts=3",
        # validate on the test split so the saved checkpoint can be checked against it
        "val_dataloader.dataset.ann_file=annotations/deeplesion_test.json"]


def run(tool, *args, root):
    env = dict(os.environ, DEEPLESION_ROOT=str(root) + "/", PYTHONUNBUFFERED="1")
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool), *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout + p.stderr


@pytest.fixture(scope="module")
def trained(prepared_root, tmp_path_factory):
    wd = tmp_path_factory.mktemp("train")
    log = run("train.py", CONFIG, "--work-dir", str(wd), "--cfg-options", "train_cfg.max_epochs=1",
              *TINY, root=prepared_root)
    return wd, log


def test_train_writes_checkpoint_and_froc(trained):
    wd, log = trained
    assert (wd / "epoch_1.pth").exists()
    assert "DeepLesion FROC" in log and "deeplesion/all_avg" in log
    for f in ("froc.json", "froc.png", "froc_table.txt"):
        assert (wd / f).exists()


def test_checkpoint_round_trip_reproduces_froc(trained, prepared_root, tmp_path):
    wd, _ = trained
    with open(wd / "froc.json") as f:
        during_training = json.load(f)
    out = tmp_path / "preds.json"
    log = run("test.py", CONFIG, str(wd / "epoch_1.pth"), "--work-dir", str(tmp_path), "--out",
              str(out), "--show-dir", "overlays", "--cfg-options", *TINY, root=prepared_root)
    assert "DeepLesion FROC" in log
    with open(tmp_path / "froc.json") as f:
        after_reload = json.load(f)
    assert after_reload == during_training
    overlays = os.listdir(tmp_path / "overlays")
    assert len(overlays) == 4 and all(o.endswith(".png") for o in overlays)
    # the predictions file evaluates to the same numbers, with and without --gt
    log = run("eval_froc.py", str(out), "--out-dir", str(tmp_path / "eval"), root=prepared_root)
    with open(tmp_path / "eval" / "froc.json") as f:
        assert json.load(f) == after_reload
    # --gt: ground truth from the annotation file; an image left out of the predictions is
    # reported and counted as an image without detections
    with open(out) as f:
        preds = json.load(f)
    gt_file = tmp_path / "gt.json"
    with open(prepared_root / "annotations" / "deeplesion_test.json") as f:
        ann = json.load(f)
    names = {p["file_name"] for p in preds["images"]}
    ann["images"] = [i for i in ann["images"] if i["file_name"] in names]
    gt_file.write_text(json.dumps(ann))
    log = run("eval_froc.py", str(out), "--gt", str(gt_file), "--out-dir", str(tmp_path / "gt"),
              root=prepared_root)
    with open(tmp_path / "gt" / "froc.json") as f:
        assert json.load(f) == after_reload
    preds["images"] = preds["images"][1:]
    (tmp_path / "fewer.json").write_text(json.dumps(preds))
    log = run("eval_froc.py", str(tmp_path / "fewer.json"), "--gt", str(gt_file), root=prepared_root)
    assert "1 images of" in log and "have no predictions" in log


def test_resume_continues_from_last_checkpoint(trained, prepared_root, tmp_path):
    import shutil

    wd, _ = trained
    work = tmp_path / "resume"
    shutil.copytree(wd, work)
    log = run("train.py", CONFIG, "--work-dir", str(work), "--resume", "--cfg-options",
              "train_cfg.max_epochs=2", *TINY, root=prepared_root)
    assert "resumed epoch: 1" in log.lower() or "resumed epoch 1" in log.lower()
    assert "Epoch(train) [2]" in log and "Epoch(train) [1]" not in log
    from mmdet_plugins.runner import checkpoint_safe_globals

    with checkpoint_safe_globals():
        state = torch.load(work / "epoch_2.pth", map_location="cpu")
    assert state["meta"]["epoch"] == 2


def test_cli_errors_are_clear(prepared_root, tmp_path):
    env = dict(os.environ, DEEPLESION_ROOT=str(prepared_root) + "/")
    p = subprocess.run([sys.executable, "tools/test.py", CONFIG, str(tmp_path / "nope.pth")],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    assert p.returncode != 0 and "nope.pth does not exist" in p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "alignshift-predictions/1",
                               "images": [{"thickness": 5.0, "gt_boxes": [], "pred_boxes": [[1, 2]]}]}))
    p = subprocess.run([sys.executable, "tools/eval_froc.py", str(bad)], cwd=ROOT, capture_output=True,
                       text=True)
    assert p.returncode != 0 and "images[0]" in p.stderr and "pred_boxes" in p.stderr


def test_cfg_options_and_env_data_root(prepared_root, monkeypatch):
    import argparse

    from tools._cli import load_config

    monkeypatch.setenv("DEEPLESION_ROOT", "/some/where/")
    args = argparse.Namespace(config=CONFIG, launcher="none", work_dir=None,
                              cfg_options={"train_cfg.max_epochs": 3, "model.backbone.conv": "tsm"})
    cfg = load_config(args)
    assert cfg.train_cfg.max_epochs == 3 and cfg.model.backbone.conv == "tsm"
    assert cfg.train_dataloader.dataset.data_root == "/some/where/"
    assert cfg.work_dir.endswith("alignshift_3slice_synthetic")
    assert cfg.val_evaluator.out_dir == cfg.work_dir


def test_test_accepts_a_checkpoint_url(trained, prepared_root, tmp_path):
    import functools
    import http.server
    import threading

    wd, _ = trained
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(wd))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/epoch_1.pth"
        env_home = tmp_path / "torch_home"
        os.environ["TORCH_HOME"] = str(env_home)
        try:
            log = run("test.py", CONFIG, url, "--work-dir", str(tmp_path), "--cfg-options", *TINY,
                      root=prepared_root)
        finally:
            del os.environ["TORCH_HOME"]
    finally:
        server.shutdown()
    assert "DeepLesion FROC" in log
    with open(tmp_path / "froc.json") as f, open(wd / "froc.json") as g:
        assert json.load(f) == json.load(g)
