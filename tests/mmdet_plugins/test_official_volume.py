"""The official configs' inputs on a volume: the volume driver gives the network what the test pipeline
gives it for the same slices written in the DeepLesion release format."""

from __future__ import annotations

import csv
import json
import os

import cv2
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from alignshift.data import DL_INFO_COLUMNS, HU_OFFSET, parse_dl_info, records_to_coco, select_split
from alignshift.inference import PreprocessConfig, prepare_slice, preprocess_from_test_pipeline, read_volume

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OFFICIAL = os.path.join(ROOT, "configs", "deeplesion", "official")
SIZE, FIRST = 48, 7  # in-plane size; number of the first PNG of each series


def write_release(root, series):
    """``series``: name -> (HU (S, R, C), (sx, sy, interval), key slice indices). Writes
    ``Images_png/<name>/<FIRST + k>.png`` for every slice, one test-split ``DL_info.csv`` row per key
    slice, and the test annotations as tools/prepare_deeplesion.py does (through alignshift.data)."""
    rows = []
    for n, (name, (hu, (sx, sy, dz), keys)) in enumerate(series.items(), start=1):
        folder = root / "Images_png" / name
        folder.mkdir(parents=True)
        for k, im in enumerate(hu):
            cv2.imwrite(str(folder / f"{FIRST + k:03d}.png"), (im + HU_OFFSET).astype(np.uint16))
        lo, hi = FIRST, FIRST + len(hu) - 1
        for k in keys:
            rows.append([f"{name}_{FIRST + k:03d}.png", n, 1, 1, FIRST + k, "11, 11, 21, 21, 11, 21, 21, 11",
                         "10, 10, 22, 22", "14.1, 14.1", "0.5, 0.5, 0.5", 1, 0, f"{lo}, {hi}",
                         f"{sx}, {sy}, {dz}", f"{SIZE}, {SIZE}", "-175, 275", "F", 50, 3])
    with open(root / "DL_info.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(DL_INFO_COLUMNS)
        w.writerows(rows)
    records, _ = select_split(parse_dl_info(str(root / "DL_info.csv")), "test")
    (root / "annotations").mkdir()
    (root / "annotations" / "deeplesion_test.json").write_text(json.dumps(records_to_coco(records, "test")))


def write_volume(path, hu, spacing):
    img = sitk.GetImageFromArray(hu.astype(np.int16))  # identity direction: the working frame as is
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path))
    return read_volume(str(path))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A thin (1.25 mm: the 7-slice V1 weights differ from linear interpolation) and a thick (5 mm)
    series, written as DeepLesion PNGs + DL_info rows and as NIfTI volumes of the same slices."""
    root = tmp_path_factory.mktemp("official_volume")
    rng = np.random.default_rng(7)
    series = {}
    for name, dz, n in (("000001_01_01", 1.25, 13), ("000002_01_01", 5.0, 6)):
        hu = rng.integers(-1100, 1600, (n, SIZE, SIZE)).astype(np.float32)
        keys = sorted({0, 1, n // 2, n - 2, n - 1})  # the edges: neighbours past the ends
        series[name] = (hu, (0.75, 0.75, dz), keys)
    write_release(root, series)
    volumes = {name: write_volume(root / f"{name}.nii.gz", hu, spacing)
               for name, (hu, spacing, _) in series.items()}
    return root, series, volumes


@pytest.mark.parametrize("name", ["alignshift_3slice", "alignshift_7slice", "tsm_3slice", "tsm_7slice"])
def test_volume_driver_gives_the_official_test_pipelines_network_input(mmdet_registered, release, name):
    from mmdet.registry import DATASETS, MODELS
    from mmdet.structures import DetDataSample
    from mmengine.config import Config

    root, series, volumes = release
    cfg = Config.fromfile(os.path.join(OFFICIAL, f"{name}.py"), import_custom_modules=False)
    pre = preprocess_from_test_pipeline(cfg.test_dataloader.dataset, cfg.model, cfg.filename)
    assert pre.sampler == "v1" and pre.interpolate == name.startswith("tsm")
    ds_cfg = cfg.test_dataloader.dataset.copy()
    ds_cfg.update(data_root=str(root) + "/", ann_file="annotations/deeplesion_test.json")
    dataset = DATASETS.build(ds_cfg)
    normalise = MODELS.build(cfg.model.data_preprocessor)  # the snapshot's mean 50 / std 1, padding
    assert (normalise.mean.flatten().tolist(), normalise.std.flatten().tolist()) == ([50.0], [1.0])

    def network_input(img, sample):
        return normalise(dict(inputs=[img], data_samples=[sample]), False)["inputs"][0]

    checked = differs = 0
    for i in range(len(dataset)):
        sample = dataset[i]
        meta = sample["data_samples"].metainfo
        series_name, png = meta["file_name"].split("/")
        vol = volumes[series_name]
        key = int(png[:-4]) - FIRST
        img, (sx, sy) = prepare_slice(vol.hu, key, vol.slice_interval, pre)
        assert vol.slice_interval == meta["thickness"]
        assert img.shape[1:] == meta["img_shape"] and (sx, sy) == pytest.approx(meta["scale_factor"])
        ours = torch.from_numpy(img)
        assert torch.equal(ours, sample["inputs"])  # windowed, resized: bit for bit
        vol_sample = DetDataSample(metainfo=dict(img_shape=img.shape[1:], ori_shape=img.shape[1:]))
        assert torch.equal(network_input(ours, vol_sample), network_input(sample["inputs"],
                                                                          sample["data_samples"]))
        checked += 1
        # this project's own sampling is not the published one where the published defect bites
        own = prepare_slice(vol.hu, key, vol.slice_interval,
                            PreprocessConfig(**{**pre.__dict__, "sampler": "deeplesion"}))[0]
        differs += not np.array_equal(own, img)
    assert checked == sum(len(keys) for _, _, keys in series.values())
    # 7 slices of the 1.25 mm series: the outer channels' weights are the published defect's
    assert (differs > 0) == (name.endswith("7slice"))
