"""tools/train.py, tools/test.py and tools/eval_froc.py as a user runs them."""

import json
import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.e2e

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
    (tmp_path / "overlays").mkdir()
    (tmp_path / "overlays" / ".alignshift-output.json").write_text(
        json.dumps({"tool": "DeepLesionVisualizationHook", "entries": ["old.png"]}))
    (tmp_path / "overlays" / "old.png").write_text("an earlier run's overlay")
    log = run("test.py", CONFIG, str(wd / "epoch_1.pth"), "--work-dir", str(tmp_path), "--out",
              str(out), "--show-dir", str(tmp_path / "overlays"), "--cfg-options", *TINY,
              "default_hooks.visualization.max_images=3", root=prepared_root)
    assert "DeepLesion FROC" in log
    with open(tmp_path / "froc.json") as f:
        after_reload = json.load(f)
    assert after_reload == during_training
    overlays = sorted(os.listdir(tmp_path / "overlays"))
    assert overlays[0] == ".alignshift-output.json" and len(overlays) == 4  # old.png replaced
    assert all(o.endswith(".png") for o in overlays[1:]) and "old.png" not in overlays
    assert f"wrote 3 overlays to {tmp_path / 'overlays'}; capped at max_images=3, 1 test images " \
           "not drawn" in log
    assert f"wrote the predictions to {out}" in log and f"overlays in {tmp_path / 'overlays'}" in log
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


def test_test_breakdown_bootstrap_and_flip_tta(trained, prepared_root, tmp_path):
    """--breakdown / --bootstrap / --seed reach the evaluator (with the test split's annotation file,
    so patients and lesion fields are known); --tta wraps the detector the mmdet way, loads the same
    checkpoint into it, and its predictions compare with the plain ones in compare_froc."""
    wd, _ = trained
    plain, tta = tmp_path / "plain.json", tmp_path / "tta.json"
    log = run("test.py", CONFIG, str(wd / "epoch_1.pth"), "--work-dir", str(tmp_path / "a"), "--out",
              str(plain), "--breakdown", "type,interval", "--bootstrap", "50", "--seed", "2",
              "--cfg-options", *TINY, root=prepared_root)
    assert "over 50 resamples of the patients (with replacement, seed 2)" in log
    with open(tmp_path / "a" / "froc_breakdown.json") as f:
        rep = json.load(f)
    assert rep["bootstrap"]["resamples"] == 50 and rep["bootstrap"]["seed"] == 2
    assert set(rep["breakdowns"]) == {"type", "interval"} and rep["num_patients"] >= 1
    assert rep["subsets"]["all"]["sens_ci"] is not None
    with open(tmp_path / "a" / "froc.json") as f, open(wd / "froc.json") as g:
        assert json.load(f) == json.load(g)  # the paper's table as before
    with open(plain) as f:
        images = json.load(f)["images"]
    assert len(images) == 4 and all("patient" in i and "gt_lesion_type" in i for i in images)

    log = run("test.py", CONFIG, str(wd / "epoch_1.pth"), "--work-dir", str(tmp_path / "b"), "--out",
              str(tta), "--tta", "--bootstrap", "0", "--cfg-options", *TINY, root=prepared_root)
    assert "DeepLesionTTAModel" in log and "TestTimeAug" in log  # the config the runner used
    assert "no confidence intervals" not in log  # --bootstrap 0 is asked for, not a fall-back
    with open(tmp_path / "b" / "froc_breakdown.json") as f:
        assert json.load(f)["bootstrap"] is None
    with open(tta) as f:
        tta_images = json.load(f)["images"]
    assert [i["file_name"] for i in tta_images] == [i["file_name"] for i in images]
    assert [i["gt_boxes"] for i in tta_images] == [i["gt_boxes"] for i in images]  # original orientation
    assert [i["pred_boxes"] for i in tta_images] != [i["pred_boxes"] for i in images]
    log = run("compare_froc.py", str(tta), str(plain), "--bootstrap", "100", "--out-dir",
              str(tmp_path / "cmp"), root=prepared_root)
    assert "paired comparison: tta - plain" in log
    with open(tmp_path / "cmp" / "froc_compare.json") as f:
        assert json.load(f)["bootstrap"]["resamples"] == 100


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
    from mmdet_plugins.apis import load_config

    monkeypatch.setenv("DEEPLESION_ROOT", "/some/where/")
    cfg = load_config(CONFIG, {"train_cfg.max_epochs": 3, "model.backbone.conv": "tsm"})
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


# --- mistakes a new user makes: one line, exit 1 or 2, checked before any model or data is loaded,
# --- and nothing written or deleted in the user's folder

@pytest.fixture(scope="module")
def user_ws(tmp_path_factory, prepared_root):
    ws = tmp_path_factory.mktemp("user")
    (ws / "mine").mkdir()
    (ws / "mine" / "keep.txt").write_text("keep")
    (ws / "notes.txt").write_text("not a checkpoint")
    (ws / "empty_root").mkdir()
    import zipfile

    with zipfile.ZipFile(ws / "images.zip", "w") as z:
        z.writestr("a.txt", "not torch")
    torch.save({"state_dict": {"backbone.net.body.model.features.conv0.weight": torch.zeros(3),
                               "extra.weight": torch.zeros(1)}}, ws / "other.pth")
    return ws


def _snapshot(root):
    return {os.path.relpath(os.path.join(d, f), root): os.path.getsize(os.path.join(d, f))
            for d, _, fs in os.walk(root) for f in fs}


def _logs_to_current_stdout(monkeypatch):
    """mmengine's loggers keep the stdout of the test that made them (capsys closes it afterwards)."""
    import logging

    from mmengine.logging import MMLogger

    for logger in MMLogger._instance_dict.values():
        for h in logger.handlers:
            if type(h) is logging.StreamHandler:
                monkeypatch.setattr(h, "stream", sys.stdout)


CFG_ABS = os.path.join(ROOT, CONFIG)
TOOL_CASES = [
    ("test", [CFG_ABS, "nope.pth"], 2, r"checkpoint nope.pth does not exist"),
    ("test", [CFG_ABS, "notes.txt"], 1, r"notes.txt is not a PyTorch checkpoint \(neither a torch.save zip"),
    ("test", ["configs/nope.py", "other.pth"], 2, r"config configs/nope.py does not exist \(relative paths"),
    ("test", [CFG_ABS, "other.pth", "--out", "/proc/alignshift/p.json"], 1, r"is not writable"),
    ("test", [CFG_ABS, "other.pth", "--out", "p.txt"], 2, r"use a .json file name"),
    ("test", [CFG_ABS, "other.pth", "--out", "mine.json/"], 2, r"use a .json file name"),
    ("test", [CFG_ABS, "other.pth", "--show-dir", "mine"], 1, r"mine is not empty and was not written by "
                                                              r"DeepLesionVisualizationHook"),
    ("test", [CFG_ABS, "other.pth", "--work-dir", "notes.txt"], 1, r"work dir .*notes.txt exists and is not"),
    ("test", [CFG_ABS, "other.pth", "--cfg-options", "test_dataloader.dataset.data_root=empty_root/"], 1,
     r"test_dataloader: annotation file .*empty_root/annotations/deeplesion_test.json does not exist. "
     r"DeepLesion is expected in \$DEEPLESION_ROOT .*tools/prepare_deeplesion.py.*"
     r"tools/make_synthetic_deeplesion.py"),
    ("test", [CFG_ABS, "other.pth"], 1,
     r"other.pth does not fit the model of .*: .*shape mismatches \(checkpoint vs model\), e.g. "
     r"backbone.net.body.model.features.conv0.weight \(3,\) vs .* missing from the checkpoint, e.g. .* "
     r"1 not in the model, e.g. extra.weight.*checkpoint_strict=False"),
    ("test", [CFG_ABS, "images.zip"], 1, r"images.zip is not a PyTorch checkpoint that can be read"),
    ("test", [CFG_ABS], 2, r"the following arguments are required: checkpoint"),
    ("test", [CFG_ABS, "other.pth", "--breakdown", "organ"], 2, r"--breakdown organ: unknown breakdown"),
    ("test", [CFG_ABS, "other.pth", "--bootstrap", "-1"], 2, r"--bootstrap must be >= 0, got -1"),
    # a picked group without lesions in the test split stops before the model is built
    ("test", [CFG_ABS, "other.pth", "--breakdown", "type:mediastinum"], 1,
     r"deeplesion_test.json: group type:mediastinum has no lesions in this split"),
    # with --tta the checkpoint is checked against the detector inside the TTA wrapper
    ("test", [CFG_ABS, "other.pth", "--tta"], 1,
     r"other.pth does not fit the model of .*: .*shape mismatches \(checkpoint vs model\), e.g. "
     r"backbone.net.body.model.features.conv0.weight \(3,\) vs "),
    ("train", [CFG_ABS, "--cfg-options", "train_dataloader.dataset.data_root=empty_root/"], 1,
     r"train_dataloader: annotation file .*deeplesion_train.json does not exist. DeepLesion is expected"),
    ("train", [CFG_ABS, "--work-dir", "/proc/alignshift"], 1, r"work dir /proc/alignshift is not writable"),
    ("train", [CFG_ABS, "--resume", "notes.txt"], 1, r"--resume checkpoint notes.txt is not a PyTorch"),
    ("train", [CFG_ABS, "--cfg-options", "model.backbone.pretrained=http://127.0.0.1:9/densenet121-a639ec97.pth"],
     1, r"cannot download the ImageNet DenseNet-121 weights from http://127.0.0.1:9/densenet121-a639ec97.pth "
        r"\(.*\)\. Offline or behind a proxy: fetch that file elsewhere and put it at "
        r".*torch_home/hub/checkpoints/densenet121-a639ec97.pth, or pass a local copy as pretrained=.*; "
        r"or give a local copy with --cfg-options model.backbone.pretrained="),
    ("train", [CFG_ABS, "--cfg-options", "model.backbone.pretrained=nope.pth"], 2,
     r"model.backbone.pretrained: nope.pth does not exist"),
]


@pytest.mark.parametrize("tool, argv, code, match", TOOL_CASES,
                         ids=[f"{c[0]}:{' '.join(os.path.basename(a) for a in c[1])}" for c in TOOL_CASES])
def test_tool_mistakes_are_one_line_and_early(user_ws, prepared_root, monkeypatch, capsys, tool, argv,
                                              code, match):
    import re

    from alignshift.apps import test as test_tool
    from alignshift.apps import train as train_tool
    from alignshift.apps.cli import run_cli

    monkeypatch.chdir(user_ws)
    monkeypatch.setenv("DEEPLESION_ROOT", str(prepared_root) + "/")
    monkeypatch.setenv("TORCH_HOME", str(user_ws.parent / "torch_home"))
    monkeypatch.delenv("ALIGNSHIFT_DEBUG", raising=False)
    _logs_to_current_stdout(monkeypatch)
    before = _snapshot(user_ws)
    module = {"test": test_tool, "train": train_tool}[tool]
    assert run_cli(module.main, argv, prog=f"{tool}.py", hints=module.HINTS) == code
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln]
    assert len(err) == 1 and err[0].startswith(f"{tool}.py: error: "), err
    assert re.search(match, err[0]), err[0]
    assert _snapshot(user_ws) == before  # no work dir, log, overlay folder or predictions
    assert not os.path.exists(user_ws / "work_dirs")


def test_non_strict_loading_is_a_warning(user_ws, capsys):
    from mmengine.config import Config

    from mmdet_plugins.apis import check_checkpoint_matches

    model = torch.nn.Linear(2, 2)
    cfg = Config(dict(checkpoint_strict=False))
    torch.save({"state_dict": {"weight": torch.zeros(2, 2)}}, user_ws.parent / "lin.pth")
    check_checkpoint_matches(model, cfg, str(user_ws.parent / "lin.pth"), strict=False)
    assert "1 missing from the checkpoint, e.g. bias" in capsys.readouterr().err
    torch.save({"state_dict": model.state_dict()}, user_ws.parent / "lin.pth")
    check_checkpoint_matches(model, cfg, str(user_ws.parent / "lin.pth"), strict=True)  # fits: silent


def test_entry_points_and_dist_train_paths(user_ws, prepared_root):
    """Real processes: one-line errors without a traceback, and dist_train.sh from another folder
    resolving CONFIG and --work-dir relative to the caller."""
    env = dict(os.environ, DEEPLESION_ROOT=str(user_ws / "empty_root") + "/", PYTHON=sys.executable)
    env.pop("ALIGNSHIFT_DEBUG", None)
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "test.py"), CFG_ABS, "notes.txt"],
                       cwd=user_ws, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and p.stderr.strip().count("\n") == 0, p.stderr
    assert "is not a PyTorch checkpoint" in p.stderr and "Traceback" not in p.stderr
    sh = os.path.join(ROOT, "tools", "dist_train.sh")
    p = subprocess.run(["bash", sh], cwd=user_ws, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.startswith("usage: dist_train.sh CONFIG GPUS"), p.stderr
    p = subprocess.run(["bash", sh, "nope.py", "1"], cwd=user_ws, env=env, capture_output=True, text=True)
    assert p.returncode == 2 and f"config nope.py does not exist (relative to {user_ws})" in p.stderr
    rel_cfg = os.path.relpath(CFG_ABS, user_ws)
    p = subprocess.run(["bash", sh, rel_cfg, "1", "--work-dir", "notes.txt"], cwd=user_ws, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and f"work dir {user_ws / 'notes.txt'} exists and is not a folder" in p.stderr, \
        p.stderr[-2000:]
