"""tools/infer_volume.py end to end with a real (untrained, tiny) mmdet detector, and its errors."""

import csv
import json
import os
import re
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from alignshift.apps.cli import run_cli
from alignshift.inference import CSV_COLUMNS

pytestmark = pytest.mark.e2e

CONFIG = "configs/demo/alignshift_3slice_synthetic.py"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(argv):
    from alignshift.apps import infer_volume

    return run_cli(infer_volume.main, argv, prog="infer_volume.py", hints=infer_volume.HINTS)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The demo config's detector, untrained, saved as a checkpoint."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    import mmdet_plugins  # noqa: F401

    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(os.path.join(ROOT, CONFIG))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {}}, path)
    return str(path)


@pytest.fixture
def volume(tmp_path):
    arr = np.full((6, 48, 40), -1000, np.int16)
    arr[:, 8:40, 6:34] = 40
    arr[2:5, 20:28, 15:23] = 120
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.9, 0.9, 5.0))
    img.SetOrigin((10.0, -20.0, 30.0))
    img.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # RAS-stored, as many NIfTI writers do
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(img, str(path))
    return path, img


def test_tool_end_to_end(checkpoint, volume, tmp_path, capsys, monkeypatch):
    path, img = volume
    # the command line of docs/inference.md, verbatim, with an untrained stand-in checkpoint
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.join(ROOT, "configs"), "configs")
    os.makedirs("work_dirs/demo")
    shutil.copy(checkpoint, "work_dirs/demo/epoch_10.pth")
    documented = ("scan.nii.gz configs/demo/alignshift_3slice_synthetic.py work_dirs/demo/epoch_10.pth "
                  "--out work_dirs/infer/scan --save-mask")
    assert cli(documented.split()) == 0
    log = capsys.readouterr().out
    assert "6 slices of 48 x 40, slice interval 5.000 mm" in log and "input orientation RAS" in log
    out = tmp_path / "work_dirs" / "infer" / "scan"
    assert {"detections.json", "lesions.csv", "overlays", "lesion_mask.nii.gz"} <= set(os.listdir(out))
    # again into the same folder (the tool's own: allowed), on a slice range, every detection kept
    args = [str(path), os.path.join(ROOT, CONFIG), checkpoint, "--out", str(out), "--slices", "1:5",
            "--score-thr", "0", "--save-mask", "--batch-size", "3", "--no-progress"]
    assert cli(args) == 0
    doc = json.loads((out / "detections.json").read_text())
    assert doc["format"] == "alignshift-volume-detections/1"
    assert doc["preprocess"] == {"num_slices": 3, "norm_interval": 2.0, "interpolate": False,
                                 "window": [-1024.0, 2050.0], "img_scale": [128, 128],
                                 "sampler": "deeplesion"}
    assert [s["slice"] for s in doc["slices"]] == [1, 2, 3, 4]
    boxes = np.array([d for s in doc["slices"] for d in s["detections"]]).reshape(-1, 5)
    assert len(boxes) and boxes[:, [0, 2]].max() <= 40 and boxes[:, [1, 3]].max() <= 48  # volume pixels
    with open(out / "lesions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == len(doc["lesions"]) > 0
    assert len(os.listdir(out / "overlays")) == len(rows)
    mask = sitk.ReadImage(str(out / "lesion_mask.nii.gz"))
    assert mask.GetSize() == img.GetSize()
    assert np.allclose(mask.GetOrigin(), img.GetOrigin(), atol=1e-4)
    assert np.allclose(mask.GetDirection(), img.GetDirection(), atol=1e-6)
    assert np.allclose(mask.GetSpacing(), img.GetSpacing(), atol=1e-6)
    # without --save-mask, the earlier run's mask goes: it would not match this run's lesions
    assert cli([a for a in args if a != "--save-mask"] + ["--slices", "1:2"]) == 0
    assert not (out / "lesion_mask.nii.gz").exists() and (out / "detections.json").exists()
    # a folder holding anything else is refused
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    assert cli([*args[:3], "--out", str(tmp_path / "foreign")]) == 1
    assert "not empty and was not written by infer_volume" in capsys.readouterr().err


def test_tool_errors_are_one_line(checkpoint, volume, tmp_path, capsys):
    path, _ = volume
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x00not a volume" * 20)
    (tmp_path / "empty").mkdir()
    wrong = tmp_path / "wrong.pth"
    import torch

    torch.save({"state_dict": {"nothing": torch.zeros(1)}}, wrong)
    cfg = os.path.join(ROOT, CONFIG)
    cases = [([str(bad), cfg, checkpoint], 1, "cannot read it as an image"),
             ([str(tmp_path / "empty"), cfg, checkpoint], 1, "holds no DICOM series"),
             ([str(path), cfg, str(tmp_path / "none.pth")], 1, "does not exist"),
             ([str(path), cfg, checkpoint, "--slices", "4:99"], 2, "expected 0 <= a < b <= 6"),
             ([str(path), cfg, str(wrong)], 1, "does not load into the model"),
             ([str(path), cfg, checkpoint, "--series", "1.2"], 1, "applies to a DICOM folder"),
             ([str(path), cfg, checkpoint, "--cfg-options", "model.backbone.neck_init=bogus"], 1,
              "cannot build the model: neck_init must be one of")]
    for argv, code, msg in cases:
        assert cli([*argv, "--out", str(tmp_path / "o"), "--no-progress"]) == code
        err = capsys.readouterr().err
        assert msg in err and err.startswith("infer_volume.py: error:") and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()  # every input is checked before --out is claimed


def test_list_series_and_choice(tmp_path, capsys):
    folder = tmp_path / "dicom"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for uid, n in (("1.2.826.0.1.1", 3), ("1.2.826.0.1.2", 2)):
        for k in range(n):
            s = sitk.GetImageFromArray(np.zeros((1, 8, 8), np.int16))
            for tag, val in (("0020|000e", uid), ("0020|0032", f"0\\0\\{2.0 * k}"),
                             ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0008|0018", f"{uid}.{k + 1}"),
                             ("0008|103e", f"series {n}")):
                s.SetMetaData(tag, val)
            writer.SetFileName(str(folder / f"{uid}_{k}.dcm"))
            writer.Execute(s)
    assert cli([str(folder), "--list-series"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == ["1.2.826.0.1.1\t3 files\tseries 3", "1.2.826.0.1.2\t2 files\tseries 2"]
    assert cli([str(folder), os.path.join(ROOT, CONFIG), str(tmp_path / "x.pth")]) == 1  # no checkpoint
    assert cli([str(folder), os.path.join(ROOT, CONFIG), __file__, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "2 DICOM series; choose one by its SeriesInstanceUID: 1.2.826.0.1.1 (3 files, series 3)" in err
    assert err.rstrip().endswith("choose one with --series UID (--list-series lists them)")  # the tool's hint


@pytest.mark.parametrize("name,expected", [
    ("deeplesion/fasterrcnn_densenet_alignshift_3slice.py", (3, 2.0, False, (512, 512), "deeplesion")),
    ("deeplesion/fasterrcnn_densenet_alignshift_7slice.py", (7, 2.0, False, (512, 512), "deeplesion")),
    ("deeplesion/fasterrcnn_densenet_2.5d_3slice.py", (3, 2.0, True, (512, 512), "deeplesion")),
    ("demo/alignshift_3slice_synthetic.py", (3, 2.0, False, (128, 128), "deeplesion")),
    ("deeplesion/official/alignshift_3slice.py", (3, 2.0, False, (512, 512), "v1")),
    ("deeplesion/official/alignshift_7slice.py", (7, 2.0, False, (512, 512), "v1")),
    ("deeplesion/official/tsm_3slice.py", (3, 2.0, True, (512, 512), "v1")),
    ("deeplesion/official/tsm_7slice.py", (7, 2.0, True, (512, 512), "v1")),
])
def test_preprocess_read_from_configs(name, expected):
    from mmengine.config import Config

    from alignshift.inference import preprocess_from_test_pipeline

    cfg = Config.fromfile(os.path.join(ROOT, "configs", name))
    pre = preprocess_from_test_pipeline(cfg.test_dataloader.dataset, cfg.model, cfg.filename)
    assert (pre.num_slices, pre.norm_interval, pre.interpolate, pre.img_scale, pre.sampler) == expected
    assert pre.window == (-1024.0, 2050.0)


def test_cuda_requested_without_cuda(checkpoint, volume, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    path, _ = volume
    assert cli([str(path), os.path.join(ROOT, CONFIG), checkpoint, "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def test_bad_input_is_one_line_and_leaves_nothing(checkpoint, volume, tmp_path, capsys, monkeypatch):
    """A 2D image, an empty folder, several series, an unknown or undownloadable --model, an unwritable
    --out, --dicom-seg on a NIfTI: one line each, exit non-zero, no --out folder, no checkpoint."""
    import functools

    from alignshift.apps import infer_volume

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where a fetch would be cached
    path, _ = volume
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((32, 40), np.int16)), str(flat))
    (tmp_path / "empty").mkdir()
    several = tmp_path / "several"
    several.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for uid in ("1.2.826.0.1.1", "1.2.826.0.1.2"):
        for k in range(2):
            s = sitk.GetImageFromArray(np.zeros((1, 8, 8), np.int16))
            for tag, val in (("0020|000e", uid), ("0020|0032", f"0\\0\\{2.0 * k}"),
                             ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0008|0018", f"{uid}.{k + 1}")):
                s.SetMetaData(tag, val)
            writer.SetFileName(str(several / f"{uid}_{k}.dcm"))
            writer.Execute(s)
    (tmp_path / "a_file").write_text("not a folder")
    cfg = os.path.join(ROOT, CONFIG)
    explicit = [cfg, checkpoint]
    out = tmp_path / "out"
    ck = tmp_path / "checkpoints"
    model = ["--model", "alignshift_7slice", "--checkpoints", str(ck)]
    cases = [
        ([str(flat), *explicit], 1, "a 2D image of 40 x 32 voxels; expected a 3D CT volume"),
        ([str(tmp_path / "empty"), *explicit], 1, "holds no DICOM series"),
        ([str(several), *explicit], 1, "holds 2 DICOM series; choose one by its SeriesInstanceUID"),
        ([str(path), "--model", "resnet50"], 2, "no model 'resnet50' in the zoo; known: alignshift_3slice, "
                                                "alignshift_7slice, tsm_3slice, tsm_7slice"),
        ([str(path), *model], 1, "model alignshift_7slice is not downloaded"),
        ([str(path), *explicit, "--out", "/proc/infer_out"], 1,
         "output folder /proc/infer_out is not writable"),
        ([str(path), *explicit, "--out", str(tmp_path / "a_file" / "o")], 1, "a_file is not a folder"),
        ([str(path), *explicit, "--dicom-seg"], 1, "a DICOM SEG references the images of a DICOM series; "
                                                   "this scan is a NIfTI file; --dicom-seg needs a DICOM"),
        ([str(path), *explicit, *model], 2, "give either --model NAME or CONFIG CHECKPOINT, not both"),
        ([str(path), *explicit, "--from", checkpoint], 2, "--from FILE converts a zoo snapshot"),
        ([str(path)], 2, "give --model NAME (tools/download.py --list) or CONFIG CHECKPOINT"),
    ]

    def offline(folder_id, output, quiet):  # gdown without a network
        raise ConnectionError("Failed to resolve 'drive.google.com'")

    main = functools.partial(infer_volume.main, drive_downloader=offline)
    for argv, code, msg in cases:
        if "--out" not in argv:
            argv = [*argv, "--out", str(out)]
        rc = run_cli(main, [*argv, "--no-progress"], prog="infer_volume.py", hints=infer_volume.HINTS)
        assert rc == code, argv
        err = capsys.readouterr().err
        assert msg in err and err.startswith("infer_volume.py: error:") and err.count("\n") == 1, err
        assert not out.exists() and _tree(ck) == [], argv
    # the undownloadable model's line says what to download, or --from
    run_cli(main, [str(path), *model, "--out", str(out)], prog="infer_volume.py")
    err = capsys.readouterr().err
    assert ("(ConnectionError: no connection to the download site): run 'python tools/download.py download "
            f"alignshift_7slice --dest {ck}' where the network allows, or fetch the published file by hand "
            "and pass --from FILE") in err
    assert _tree(tmp_path / "cache") in ([], ["alignshift"])  # no partial download kept


def test_dicom_series_with_seg_report_and_markers(checkpoint, tmp_path, capsys):
    """A DICOM series in, report.html and a DICOM SEG on the series out, each recorded in the marker;
    a later run without them removes the earlier ones."""
    pydicom = pytest.importorskip("pydicom")
    pytest.importorskip("highdicom")
    from alignshift.apps.outputs import read_marker
    from alignshift.inference.phantom import write_dicom_series

    hu = np.full((6, 48, 40), -1000.0, np.float32)
    hu[:, 8:40, 6:34] = 40
    hu[2:5, 20:28, 15:23] = 120
    files = write_dicom_series(str(tmp_path / "series"), hu, (0.9, 0.9), 5.0)
    out = tmp_path / "out"
    args = [str(tmp_path / "series"), os.path.join(ROOT, CONFIG), checkpoint, "--out", str(out),
            "--score-thr", "0", "--no-progress"]
    assert cli([*args, "--dicom-seg"]) == 0
    log = capsys.readouterr().out
    assert re.search(r"report\.html: [\d.]+ MB, written in [\d.]+ s\. Images: 40 x 48 pixels, the scan's "
                     r"full resolution, lossless \(PNG\)\.", log)
    assert re.search(r"lesions_seg\.dcm: \d+ segments, \d+ frames on \d+ source images", log)
    assert {"report.html", "lesions_seg.dcm"} <= set(read_marker(str(out))["entries"])
    html = (out / "report.html").read_text()
    assert "alignshift_3slice_synthetic" in html and "<script src" not in html
    seg = pydicom.dcmread(str(out / "lesions_seg.dcm"))
    source = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert seg.Modality == "SEG" and seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert len(seg.SegmentSequence) == len(json.loads((out / "detections.json").read_text())["lesions"])
    # the same folder without the report and the SEG: the earlier ones do not pass for this run's
    assert cli([*args, "--no-report"]) == 0
    assert not (out / "report.html").exists() and not (out / "lesions_seg.dcm").exists()
    assert "report.html:" not in capsys.readouterr().out


def test_documented_model_commands(volume, tmp_path, capsys, monkeypatch):
    """README's and docs/inference.md's one-command form, verbatim, in a fresh folder: the zoo model
    is fetched (a local stand-in for the Google Drive folder serves a published-layout fixture
    snapshot with random weights), converted to checkpoints/, and run on a NIfTI and on a DICOM
    series. Appended, for speed only: 64-pixel inputs and 30 proposals (the stand-in's scores sit
    near 0.5, so every detection is kept)."""
    import functools

    import torch

    from alignshift.apps import infer_volume
    from alignshift.apps.zoo.testing import fake_published_checkpoint
    from alignshift.inference.phantom import write_dicom_series

    pytest.importorskip("highdicom")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    sitk.WriteImage(sitk.ReadImage(str(volume[0])), "scan.nii.gz")
    write_dicom_series("dicom_series", sitk.GetArrayFromImage(volume[1]).astype(np.float32), (0.9, 0.9), 5.0)
    fetched = []

    def drive(folder_id, output, quiet):  # stands in for gdown.download_folder
        fetched.append(folder_id)
        name = os.path.join(output, "densenet_align_7slice.pth")
        torch.save(fake_published_checkpoint(7, "alignshift", seed=1), name)
        return [output]

    main = functools.partial(infer_volume.main, drive_downloader=drive)
    fast = ["--cfg-options", "test_dataloader.dataset.pipeline.1.scale=(64,64)",
            "model.test_cfg.rpn.max_per_img=30", "--score-thr", "0", "--no-progress"]
    for documented in ("scan.nii.gz --model alignshift_7slice",
                       "dicom_series/ --model alignshift_7slice --dicom-seg"):
        assert run_cli(main, documented.split() + fast, prog="infer_volume.py", hints=infer_volume.HINTS) == 0
    log = capsys.readouterr().out
    assert len(fetched) == 1 and os.path.isfile("checkpoints/alignshift_7slice.pth")  # fetched once
    assert "dropped the mask head" in log and "sampler='v1'" in log
    # 6 slices of 5 mm, a 7-slice input reaching 3 either side: said once per run
    assert log.count("note: the scan has 6 slices but the model's 7-slice input reaches 3 slices") == 2
    for out in ("work_dirs/infer/scan", "work_dirs/infer/dicom_series"):
        assert {"detections.json", "lesions.csv", "overlays", "report.html"} <= set(os.listdir(out))
    assert os.path.isfile("work_dirs/infer/dicom_series/lesions_seg.dcm")
    assert "Images: 40 x 48 pixels, the scan's full resolution, lossless (PNG)." in log
