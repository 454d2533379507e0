"""``infer_volume --model NAME`` gives the detections of ``tools/test.py`` with the official config.

A DeepLesion-format release (PNG slices, ``DL_info.csv`` rows, the test annotations) and the same
slices as NIfTI volumes (and one as a DICOM series): for the 3- and 7-slice AlignShift and TSM zoo
models, a published-layout fixture snapshot (random weights) is converted by ``tools/download.py
download NAME --from FILE`` into a temporary checkpoints folder; ``tools/test.py`` runs the official
config on the release and ``tools/infer_volume.py SCAN --model NAME`` on the volumes. The boxes and
scores of every key slice agree to 1e-4. Small images (48 pixels, resized to 64 instead of 512) and
30 proposals instead of 300, by the same ``--cfg-options`` in both tools, keep it fast.
"""

from __future__ import annotations

import csv
import json
import os

import cv2
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from alignshift.apps.cli import run_cli
from alignshift.apps.zoo import find_entry, load_index
from alignshift.apps.zoo.testing import fake_published_checkpoint
from alignshift.data import DL_INFO_COLUMNS, HU_OFFSET, parse_dl_info, records_to_coco, select_split

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE, FIRST, SCALE = 48, 7, 64  # in-plane size; number of each series' first PNG; the test Resize
# the same overrides in both tools: 64-pixel inputs, 30 proposals into the RoI head (its 25088 x 2048
# layer costs 2 s a slice for the published 300 on 2 CPU cores)
FAST = [f"test_dataloader.dataset.pipeline.1.scale=({SCALE},{SCALE})", "model.test_cfg.rpn.max_per_img=30"]
# thin: the 7-slice published sampling reaches 5 slices either side at 1.25 mm (its defect's weights);
# thick: native neighbours; key slices at both ends, where neighbours fall past the series
SERIES = {"000001_01_01": (1.25, 11, (0, 1, 5, 9, 10)), "000002_01_01": (5.0, 5, (0, 2, 4))}
DICOM = "000002_01_01"


def _write_release(root, volumes):
    rows = []
    for n, (name, hu) in enumerate(volumes.items(), start=1):
        dz, _, keys = SERIES[name]
        folder = root / "Images_png" / name
        folder.mkdir(parents=True)
        for k, im in enumerate(hu):
            cv2.imwrite(str(folder / f"{FIRST + k:03d}.png"), (im + HU_OFFSET).astype(np.uint16))
        for k in keys:
            rows.append([f"{name}_{FIRST + k:03d}.png", n, 1, 1, FIRST + k, "11, 11, 21, 21, 11, 21, 21, 11",
                         "10, 10, 22, 22", "14.1, 14.1", "0.5, 0.5, 0.5", 1, 0,
                         f"{FIRST}, {FIRST + len(hu) - 1}", f"0.75, 0.75, {dz}", f"{SIZE}, {SIZE}",
                         "-175, 275", "F", 50, 3])
    with open(root / "DL_info.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(DL_INFO_COLUMNS)
        w.writerows(rows)
    records, _ = select_split(parse_dl_info(str(root / "DL_info.csv")), "test")
    (root / "annotations").mkdir()
    (root / "annotations" / "deeplesion_test.json").write_text(json.dumps(records_to_coco(records, "test")))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The release root and the scans: ``[(path, series name)]``, NIfTI for each series, DICOM for one."""
    from alignshift.inference.phantom import write_dicom_series

    root = tmp_path_factory.mktemp("release")
    rng = np.random.default_rng(25)
    volumes = {name: rng.integers(-1100, 1600, (n, SIZE, SIZE)).astype(np.float32)
               for name, (_, n, _) in SERIES.items()}
    _write_release(root, volumes)
    scans = []
    for name, hu in volumes.items():
        img = sitk.GetImageFromArray(hu.astype(np.int16))
        img.SetSpacing((0.75, 0.75, SERIES[name][0]))
        sitk.WriteImage(img, str(root / f"{name}.nii.gz"))
        scans.append((str(root / f"{name}.nii.gz"), name))
    write_dicom_series(str(root / "dicom"), volumes[DICOM], (0.75, 0.75), SERIES[DICOM][0])
    scans.append((str(root / "dicom"), DICOM))
    return root, scans


def assert_same_detections(ours, theirs, what):
    """The same boxes and scores to 1e-4, in any order (the predictions file keeps 4 decimals of the
    scores, which can reorder near-ties): each detection's nearest in the other set, one to one."""
    ours, theirs = np.asarray(ours, np.float64).reshape(-1, 5), np.asarray(theirs, np.float64).reshape(-1, 5)
    assert len(ours) == len(theirs) > 0, what
    diff = np.abs(ours[:, None, :] - theirs[None, :, :]).max(-1)  # (N, N): largest difference of 5 values
    nearest = diff.argmin(1)
    assert sorted(nearest.tolist()) == list(range(len(theirs))), what
    worst = float(diff[np.arange(len(ours)), nearest].max())
    assert worst <= 1e-4, f"{what}: a detection differs by {worst:.2g}"


@pytest.mark.parametrize("name", ["alignshift_3slice", "alignshift_7slice", "tsm_3slice", "tsm_7slice"])
def test_infer_volume_model_gives_the_detections_of_tools_test(release, name, tmp_path, capsys):
    from alignshift.apps import infer_volume, test
    from alignshift.apps.zoo.cli import main as download_main

    root, scans = release
    entry = find_entry(load_index(), name)
    published = tmp_path / f"{name}.published.pth"
    torch.save(fake_published_checkpoint(entry.slices, entry.conv, seed=entry.slices), published)
    checkpoints = tmp_path / "checkpoints"
    argv = ["download", name, "--from", str(published), "--dest", str(checkpoints)]
    assert run_cli(download_main, argv, prog="download.py") == 0

    # tools/test.py CONFIG CHECKPOINT on the DeepLesion-format release
    preds_file = tmp_path / "preds.json"
    argv = [os.path.join(ROOT, entry.config), str(checkpoints / f"{name}.pth"), "--work-dir",
            str(tmp_path / "work"), "--out", str(preds_file), "--cfg-options",
            f"test_dataloader.dataset.data_root={root}/", "test_dataloader.num_workers=0",
            "test_dataloader.persistent_workers=False", *FAST]
    assert run_cli(test.main, argv, prog="test.py", hints=test.HINTS) == 0, capsys.readouterr().err
    preds = {im["file_name"]: im["pred_boxes"] for im in json.loads(preds_file.read_text())["images"]}
    assert len(preds) == sum(len(keys) for _, _, keys in SERIES.values())

    # tools/infer_volume.py SCAN --model NAME on the same slices as volumes
    checked = 0
    for i, (scan, series) in enumerate(scans):
        out = tmp_path / f"infer{i}"
        argv = [scan, "--model", name, "--checkpoints", str(checkpoints), "--out", str(out), "--score-thr",
                "0", "--no-progress", "--cfg-options", *FAST]
        assert run_cli(infer_volume.main, argv, prog="infer_volume.py", hints=infer_volume.HINTS) == 0
        log = capsys.readouterr().out
        assert f"model: {name} ({checkpoints / name}.pth)" in log and "sampler='v1'" in log
        doc = json.loads((out / "detections.json").read_text())
        assert doc["preprocess"]["sampler"] == "v1" and doc["preprocess"]["img_scale"] == [SCALE, SCALE]
        for s in doc["slices"]:
            key = f"{series}/{FIRST + s['slice']:03d}.png"
            if key not in preds:
                continue
            assert_same_detections(s["detections"], preds[key], f"{name}: {key} ({scan})")
            checked += 1
        assert (out / "report.html").is_file()
    assert checked == len(preds) + len(SERIES[DICOM][2])


def test_infer_volume_tta_is_mmdets_flip_tta_of_the_official_config(release, tmp_path, capsys):
    """``infer_volume --tta`` merges as the config's test with flip TTA does (``enable_flip_tta``:
    mmdet's TestTimeAug pipeline and ``DeepLesionTTAModel``, what ``tools/test.py --tta`` runs)."""
    from mmdet.registry import DATASETS, MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import load_checkpoint

    import mmdet_plugins  # noqa: F401
    from alignshift.apps import infer_volume
    from mmdet_plugins.tta import enable_flip_tta

    root, scans = release
    name = "alignshift_3slice"
    published = tmp_path / "densenet_align_3slice.pth"  # docs/inference.md's --from example
    torch.save(fake_published_checkpoint(3, "alignshift", seed=11), published)
    checkpoints = tmp_path / "checkpoints"
    out = tmp_path / "infer"
    scan, series = scans[0]
    argv = [scan, "--model", name, "--checkpoints", str(checkpoints), "--from", str(published), "--out",
            str(out), "--tta", "--score-thr", "0", "--no-progress", "--no-report", "--cfg-options", *FAST]
    assert run_cli(infer_volume.main, argv, prog="infer_volume.py", hints=infer_volume.HINTS) == 0
    assert f"model: {name} ({checkpoints / name}.pth), flip TTA" in capsys.readouterr().out
    ours = {s["slice"]: s["detections"] for s in json.loads((out / "detections.json").read_text())["slices"]}

    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(os.path.join(ROOT, "configs", "deeplesion", "official", f"{name}.py"))
    cfg.merge_from_dict({"test_dataloader.dataset.pipeline.1.scale": (SCALE, SCALE),
                         "model.test_cfg.rpn.max_per_img": 30})  # FAST
    enable_flip_tta(cfg)
    ds_cfg = cfg.test_dataloader.dataset.copy()
    ds_cfg.update(data_root=f"{root}/")
    dataset = DATASETS.build(ds_cfg)
    model = MODELS.build(cfg.model).eval()
    load_checkpoint(model.module, str(checkpoints / f"{name}.pth"), map_location="cpu", logger="silent")
    checked = 0
    for i in range(len(dataset)):
        sample = dataset[i]
        file_name = sample["data_samples"][0].metainfo["file_name"]
        if not file_name.startswith(series):
            continue
        with torch.no_grad():
            pred = model.test_step(pseudo_collate([sample]))[0].pred_instances
        theirs = np.hstack([pred.bboxes.numpy(), pred.scores.numpy()[:, None]])
        assert_same_detections(ours[int(file_name[-7:-4]) - FIRST], theirs, file_name)
        checked += 1
    assert checked == len(SERIES[series][2])
