"""alignshift.inference on volumes written with SimpleITK from phantoms with known lesions."""

import csv
import json
import os
import random

import cv2
import numpy as np
import pytest
import SimpleITK as sitk

from alignshift.data import load_multislice, window
from alignshift.errors import UserError
from alignshift.inference import (
    CSV_COLUMNS,
    PreprocessConfig,
    VolumeError,
    detect_volume,
    link_detections,
    list_dicom_series,
    mask_filename,
    neighbour_mix,
    prepare_slice,
    preprocess_from_test_pipeline,
    read_volume,
    sampling_notes,
    write_detections_json,
    write_lesions_csv,
    write_mask,
    write_overlays,
)

LESION_HU = 1000.0
THRESH = float(window(np.array([500.0], np.float32))[0])  # 500 HU once windowed


def phantom(shape, lesions):
    """HU array ``shape = (k, j, i)`` (numpy order of the file): air, a soft-tissue body, and bright
    cuboid lesions given as input-index ranges ``((i0, i1), (j0, j1), (k0, k1))`` inclusive."""
    k, j, i = shape
    arr = np.full(shape, -1000.0, np.float32)
    yy, xx = np.mgrid[:j, :i]
    body = ((xx - i / 2) / (0.45 * i)) ** 2 + ((yy - j / 2) / (0.4 * j)) ** 2 <= 1
    arr[:, body] = 40.0
    for (i0, i1), (j0, j1), (k0, k1) in lesions:
        arr[k0:k1 + 1, j0:j1 + 1, i0:i1 + 1] = LESION_HU
    return arr


class BlobDetector:
    """Stand-in detector with known outputs: one box (score 0.9) per bright blob of the key slice.

    Records the thickness and images it is given.
    """

    def __init__(self):
        self.calls = []

    def __call__(self, images, thickness):
        self.calls.append((images.shape, np.array(thickness)))
        out = []
        for im in images:
            key = im[im.shape[0] // 2]
            n, _, stats, _ = cv2.connectedComponentsWithStats((key > THRESH).astype(np.uint8), connectivity=8)
            boxes = [[x, y, x + w - 1, y + h - 1, 0.9] for x, y, w, h, _ in stats[1:n]]
            out.append(np.array(boxes, np.float32).reshape(-1, 5))
        return out


def expected_centre_mm(img, les):
    """Centre of a lesion in LPS mm through the written file's own geometry."""
    (i0, i1), (j0, j1), (k0, k1) = les
    centre = ((i0 + i1) / 2, (j0 + j1) / 2, (k0 + k1) / 2)
    return np.array(img.TransformContinuousIndexToPhysicalPoint(centre))


def write_dicom_series(folder, hu, spacing_xy, interval, origin, uid, shuffle=True, drop=(), first=0):
    """One file per slice, k-th slice at ``origin + k * interval`` along z; stored = HU + 1024."""
    os.makedirs(folder, exist_ok=True)
    order = list(range(hu.shape[0]))
    names = [f"IM{n:04d}.dcm" for n in range(len(order))]
    if shuffle:
        random.Random(0).shuffle(names)  # file names say nothing about the order
    w = sitk.ImageFileWriter()
    w.KeepOriginalImageUIDOn()
    for k in order:
        if k in drop:
            continue
        s = sitk.GetImageFromArray(hu[k:k + 1].astype(np.int16))
        pos = (origin[0], origin[1], origin[2] + k * interval)
        s.SetSpacing((*spacing_xy, interval))
        s.SetOrigin(pos)
        for tag, val in (("0020|000e", uid), ("0020|000d", uid + ".1"), ("0008|0060", "CT"),
                         ("0008|103e", "phantom"), ("0020|0032", "\\".join(f"{v:.4f}" for v in pos)),
                         ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0028|1052", "-1024"), ("0028|1053", "1"),
                         ("0020|0013", str(k + 1)), ("0018|0050", "0.5"),  # a SliceThickness to ignore
                         ("0008|0018", f"{uid}.{first + k + 100}")):
            s.SetMetaData(tag, val)
        w.SetFileName(os.path.join(folder, names[k]))
        w.Execute(s)
    return folder


def run(volume, cfg=None, **kw):
    cfg = cfg or PreprocessConfig(num_slices=3, img_scale=None)
    det = BlobDetector()
    return detect_volume(volume, det, cfg, progress=False, **kw), det


def test_nifti_with_flipped_and_permuted_direction(tmp_path):
    """Known lesions come back at the right working-frame voxels and LPS mm, whatever the direction."""
    les_a = ((10, 17), (20, 25), (3, 6))  # input index ranges (i, j, k)
    les_b = ((30, 33), (8, 11), (8, 9))
    arr = phantom((12, 40, 48), [les_a, les_b])
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.8, 0.7, 2.5))
    img.SetOrigin((12.0, -30.0, 200.0))
    img.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, -1))  # all three axes flipped against LPS
    path = str(tmp_path / "flipped.nii.gz")
    sitk.WriteImage(img, path)
    vol = read_volume(path)
    assert vol.hu.shape == (12, 40, 48) and vol.slice_interval == pytest.approx(2.5)
    assert vol.input_orientation == "RAI"
    assert np.allclose(vol.image.GetDirection(), np.eye(3).reshape(-1))
    assert np.allclose(vol.hu[::-1, ::-1, ::-1], arr)  # a pure flip, no interpolation
    res, det = run(vol)
    assert len(res.lesions) == 2 and all(np.allclose(t, 2.5) for _, t in det.calls)
    by_size = sorted(res.lesions, key=lambda d: -d["extent_mm"])
    for les, known in zip(by_size, (les_a, les_b)):
        (i0, i1), (j0, j1), (k0, k1) = known
        # flipped axes: working index = size - 1 - input index
        assert les["slice_start"] == 11 - k1 and les["slice_end"] == 11 - k0
        assert les["box"] == [47 - i1, 39 - j1, 47 - i0, 39 - j0]
        assert np.allclose(les["center_mm"], expected_centre_mm(img, known), atol=1e-3)
        centre = [(i0 + i1) / 2, (j0 + j1) / 2, (k0 + k1) / 2]
        assert np.allclose(les["center_input_index"], centre, atol=1e-4)
        assert les["long_axis_mm"] == pytest.approx(max((i1 - i0 + 1) * 0.8, (j1 - j0 + 1) * 0.7))
        assert les["short_axis_mm"] == pytest.approx(min((i1 - i0 + 1) * 0.8, (j1 - j0 + 1) * 0.7))
        assert les["extent_mm"] == pytest.approx((k1 - k0 + 1) * 2.5)
    # label volume: the input's geometry, labels on the known voxels
    out = write_mask(str(tmp_path / mask_filename(path)), vol, res)
    back = sitk.ReadImage(str(tmp_path / "lesion_mask.nii.gz"))
    for im in (out, back):
        assert im.GetSize() == img.GetSize()
        assert np.allclose(im.GetOrigin(), img.GetOrigin(), atol=1e-4)
        assert np.allclose(im.GetSpacing(), img.GetSpacing(), atol=1e-6)
        assert np.allclose(im.GetDirection(), img.GetDirection(), atol=1e-6)
    lab = sitk.GetArrayFromImage(back)
    for les, known in zip(by_size, (les_a, les_b)):
        (i0, i1), (j0, j1), (k0, k1) = known
        region = lab[k0:k1 + 1, j0:j1 + 1, i0:i1 + 1]
        assert (region == les["lesion_id"]).all()
        assert (lab == les["lesion_id"]).sum() == region.size


def test_sagittal_mha_is_reordered_axially(tmp_path):
    """A volume stored with permuted axes (a sagittal stack) is read in axial order."""
    les = ((2, 4), (10, 15), (5, 9))
    arr = phantom((16, 20, 6), [les])  # (k, j, i)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((3.0, 0.9, 0.9))
    # columns of the direction matrix: i -> S, j -> P, k -> L
    img.SetDirection((0, 0, 1, 0, 1, 0, 1, 0, 0))
    img.SetOrigin((-5.0, 7.0, -40.0))
    path = str(tmp_path / "sag.mha")
    sitk.WriteImage(img, path)
    vol = read_volume(path)
    assert vol.hu.shape == (6, 20, 16) and vol.slice_interval == pytest.approx(3.0)
    res, _ = run(vol)
    assert len(res.lesions) == 1
    got = res.lesions[0]
    assert (got["slice_start"], got["slice_end"]) == (2, 4)
    assert got["box"] == [5, 10, 9, 15]
    assert np.allclose(got["center_mm"], expected_centre_mm(img, les), atol=1e-4)
    m = write_mask(str(tmp_path / mask_filename(path)), vol, res)
    assert mask_filename(path) == "lesion_mask.mha"
    assert m.GetSize() == img.GetSize() and m.GetDirection() == img.GetDirection()
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "lesion_mask.mha")))
    assert (lab[5:10, 10:16, 2:5] == 1).all() and lab.sum() == 5 * 6 * 3


@pytest.mark.parametrize("interval", [5.0, 1.0])
def test_dicom_series_shuffled_with_intercept(tmp_path, interval):
    """Slices placed by ImagePositionPatient (not file order or SliceThickness), HU via the intercept."""
    les = ((20, 27), (12, 17), (4, 7))
    hu = phantom((12, 32, 40), [les])
    uid = "1.2.826.0.1.3680043.8.498.1"
    folder = write_dicom_series(str(tmp_path / f"ct{interval}"), hu, (0.75, 0.75), interval,
                                (-15.0, -12.0, -300.0), uid)
    # the files hold stored values, HU + 1024
    first = os.path.join(folder, sorted(os.listdir(folder))[0])
    raw = sitk.ImageFileReader()
    raw.SetFileName(first)
    raw.ReadImageInformation()
    assert raw.GetMetaData("0028|1052").strip() == "-1024"
    k = round((float(raw.GetMetaData("0020|0032").split("\\")[2]) + 300.0) / interval)
    with open(first, "rb") as f:  # uncompressed: the pixel data ends the file
        stored = np.frombuffer(f.read()[-32 * 40 * 2:], np.uint16).reshape(32, 40)
    assert np.array_equal(stored.astype(np.int32) - 1024, hu[k])
    vol = read_volume(folder)
    assert vol.series_uid == uid and vol.rescale == {"slope": 1.0, "intercept": -1024.0}
    assert vol.slice_interval == pytest.approx(interval)
    assert np.array_equal(vol.hu, hu)  # ordered by position along +z, HU restored
    assert vol.image.GetOrigin() == pytest.approx((-15.0, -12.0, -300.0))
    cfg = PreprocessConfig(num_slices=3, norm_interval=2.0, interpolate=False, img_scale=None)
    res, det = run(vol, cfg)
    assert all(np.allclose(t, interval) for _, t in det.calls)
    (got,) = res.lesions
    assert (got["slice_start"], got["slice_end"]) == (4, 7) and got["box"] == [20, 12, 27, 17]
    ref = sitk.Image((40, 32, 12), sitk.sitkUInt8)
    ref.SetSpacing((0.75, 0.75, interval))
    ref.SetOrigin((-15.0, -12.0, -300.0))
    assert np.allclose(got["center_mm"], expected_centre_mm(ref, les), atol=1e-3)
    assert got["center_mm"][2] == pytest.approx(-300.0 + 5.5 * interval)


@pytest.mark.parametrize("interval,interpolate", [(5.0, False), (1.0, False), (0.8, True), (5.0, True)])
def test_neighbours_match_the_dataset_loader(tmp_path, interval, interpolate):
    """The context slices are exactly load_multislice's (then windowed) for the same slices as PNGs."""
    rng = np.random.default_rng(0)
    hu = rng.uniform(-1000, 1500, (9, 6, 7)).astype(np.float32).round()
    series = tmp_path / "png" / "s"
    series.mkdir(parents=True)
    for k in range(hu.shape[0]):
        cv2.imwrite(str(series / f"{k:03d}.png"), (hu[k] + 32768).astype(np.uint16))
    cfg = PreprocessConfig(num_slices=7, norm_interval=2.0, interpolate=interpolate, img_scale=None)
    for key in (0, 1, 4, 8):
        ref = window(load_multislice(str(tmp_path / "png"), f"s/{key:03d}.png", interval, 7, 2.0,
                                     interpolate))
        got, scale = prepare_slice(hu, key, interval, cfg)
        assert scale == (1.0, 1.0)
        np.testing.assert_allclose(got.transpose(1, 2, 0), ref, rtol=1e-5, atol=1e-3)
    first = neighbour_mix(4, 9, interval, cfg)[0]
    if not interpolate:  # native neighbours when thick, 2 mm apart (clamped at the edge) when thin
        assert first == ([(1, 1.0)] if interval == 5.0 else [(0, 1.0)])


@pytest.mark.parametrize("interval", [5.0, 2.0, 1.25, 0.625])
@pytest.mark.parametrize("interpolate", [False, True])
def test_v1_sampler_is_the_published_loader_bit_for_bit(tmp_path, interval, interpolate):
    """sampler="v1": the published loader's plan and float32 sums (its 7-slice weight defect included),
    on the same slices as PNGs, edges included (a missing neighbour repeats the last one there)."""
    from alignshift.data.published import load_published_multislice

    rng = np.random.default_rng(1)
    hu = rng.uniform(-1000, 1500, (12, 5, 6)).astype(np.float32).round()
    series = tmp_path / "png" / "s"
    series.mkdir(parents=True)
    for k in range(hu.shape[0]):
        cv2.imwrite(str(series / f"{k:03d}.png"), (hu[k] + 32768).astype(np.uint16))
    variant = "tsm" if interpolate else "alignshift"
    for n in (3, 7):
        cfg = PreprocessConfig(num_slices=n, interpolate=interpolate, img_scale=None, sampler="v1")
        for key in (0, 2, 6, 11):
            ref = window(load_published_multislice(str(tmp_path / "png"), f"s/{key:03d}.png", interval, n,
                                                   2.0, variant))
            got, _ = prepare_slice(hu, key, interval, cfg)
            assert np.array_equal(got.transpose(1, 2, 0), ref)
    # 7 slices at 1.25 mm: the outer channel sits 4.8 slices below the key; the published loader mixes
    # the slices 5 and 4 below with 0.6 / 0.4 (the first neighbour's weights), linear interpolation 0.8 / 0.2
    v1 = neighbour_mix(6, 12, 1.25, PreprocessConfig(num_slices=7, interpolate=True, sampler="v1"))
    own = neighbour_mix(6, 12, 1.25, PreprocessConfig(num_slices=7, interpolate=True))
    assert v1[0] == [(1, pytest.approx(0.6)), (2, pytest.approx(0.4))]
    assert own[0] == [(1, pytest.approx(0.8)), (2, pytest.approx(0.2))]


def test_a_scan_thinner_than_the_model_input_is_noted_once(tmp_path):
    arr = phantom((3, 24, 24), [((8, 13), (8, 13), (1, 1))])
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.8, 0.8, 1.25))
    sitk.WriteImage(img, str(tmp_path / "thin.nii.gz"))
    vol = read_volume(str(tmp_path / "thin.nii.gz"))
    cfg = PreprocessConfig(num_slices=7, interpolate=True, img_scale=None, sampler="v1")
    (note,) = sampling_notes(vol.num_slices, vol.slice_interval, cfg)
    assert "3 slices" in note and "reaches 5 slices either side" in note and "edge slice is repeated" in note
    res, det = run(vol, cfg)
    assert res.notes.count(note) == 1 and len(det.calls) == 1 and det.calls[0][0] == (3, 7, 24, 24)
    assert [les["slice_start"] for les in res.lesions] == [1]  # detections go on as usual
    # enough slices (a 3-slice model at 5 mm needs 3), or the DeepLesion sampler's reach: no note
    assert sampling_notes(3, 5.0, PreprocessConfig(num_slices=3)) == []
    assert len(sampling_notes(2, 5.0, PreprocessConfig(num_slices=3))) == 1


def test_preprocess_from_test_pipeline():
    """The settings a config's test dataset and pipeline carry; what is not reproduced is one line."""
    load = dict(type="LoadDeepLesionSlicesV1", variant="tsm")
    resize = dict(type="Resize", scale=(512, 512), keep_ratio=True)
    ds = dict(num_slices=7, interpolate=False, pipeline=[load, resize, dict(type="PackDetInputs")])
    pre = preprocess_from_test_pipeline(ds, dict(backbone=dict(num_slices=7)), "a.py")
    assert pre == PreprocessConfig(num_slices=7, interpolate=True, img_scale=(512, 512), sampler="v1")
    ds3 = dict(num_slices=3, interpolate=True,
               pipeline=[dict(type="LoadDeepLesionSlices", interpolate=False, window=(-160, 240)), resize])
    assert preprocess_from_test_pipeline(ds3) == PreprocessConfig(
        num_slices=3, interpolate=False, window=(-160.0, 240.0), img_scale=(512, 512))
    bad = [(dict(ds, pipeline=[dict(type="RandomFlip")]), None, "transform 'RandomFlip' is not reproduced"),
           (dict(ds, pipeline=[dict(resize, keep_ratio=False)]), None, "keep_ratio=False"),
           (dict(ds, pipeline=[dict(load, variant="resnet")]), None, "variant 'resnet' is not one of"),
           (ds, dict(backbone=dict(num_slices=3)), "the backbone takes 3 slices but the test dataset "
                                                  "prepares 7"),
           (dict(ds, num_slices=4), None, "num_slices must be odd")]
    for dataset, model, msg in bad:
        with pytest.raises(UserError, match=msg) as err:
            preprocess_from_test_pipeline(dataset, model, "cfg/x.py")
        assert str(err.value).startswith("cfg/x.py: ") and "\n" not in str(err.value)


def test_resize_and_map_back(tmp_path):
    """Boxes found on the resized image come back in the volume's pixels."""
    les = ((10, 21), (6, 13), (2, 4))
    arr = phantom((7, 24, 32), [les])
    img = sitk.GetImageFromArray(arr)
    path = str(tmp_path / "v.nrrd")
    sitk.WriteImage(img, path)
    vol = read_volume(path)
    res, det = run(vol, PreprocessConfig(num_slices=3, img_scale=(96, 72)))
    assert det.calls[0][0][2:] == (72, 96)  # 24 x 32 scaled by 3
    (got,) = res.lesions
    assert np.allclose(got["box"], [10, 6, 21, 13], atol=0.7)
    assert (got["slice_start"], got["slice_end"]) == (2, 4)


def test_a_detector_that_takes_the_scale_factor_rescales_itself(tmp_path):
    """mmdet's rescale=True: such a detector gets (sx, sy) and returns the slice's pixels, untouched by
    the driver; flip TTA flips its boxes back across the slice's width, not the resized image's."""
    from alignshift.inference import flip_tta, run_detector

    calls = []

    class Rescaling:
        takes_scale_factor = True

        def __call__(self, images, thickness, scale_factors):
            calls.append(np.array(scale_factors))
            mirrored = bool(images[0, 0, 0, -1] > images[0, 0, 0, 0])  # the ramp below runs left to right
            x1 = 40.0 - 12 if mirrored else 2.0  # a box 2..12 of a 40-pixel-wide slice, in its pixels
            return [np.array([[x1, 3.0, x1 + 10, 9.0, 0.9]], np.float32) for _ in images]

    hu = np.tile(np.linspace(-1000, 1000, 40, dtype=np.float32), (3, 30, 1))[:, :, ::-1].copy()
    cfg = PreprocessConfig(num_slices=1, img_scale=(80, 60))  # 30 x 40 -> 60 x 80: factor 2
    (dets,) = run_detector(hu, 2.0, Rescaling(), cfg, [1], progress=False)
    np.testing.assert_array_equal(calls[0], [[2.0, 2.0]])
    np.testing.assert_allclose(dets, [[2.0, 3.0, 12.0, 9.0, 0.9]])  # not divided again
    tta = flip_tta(Rescaling(), iou_thr=0.5, max_per_img=5)
    assert tta.takes_scale_factor
    (merged,) = run_detector(hu, 2.0, tta, cfg, [1], progress=False)
    # the mirrored view's box (28..38 in the mirror) flips back across the 40-pixel slice to 2..12
    np.testing.assert_allclose(merged, [[2.0, 3.0, 12.0, 9.0, 0.9]])


def test_outputs_and_slice_subset(tmp_path):
    les = ((10, 17), (20, 25), (3, 6))
    arr = phantom((12, 40, 48), [les])
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.8, 0.8, 2.0))
    path = str(tmp_path / "v.nii")
    sitk.WriteImage(img, path)
    vol = read_volume(path)
    res, det = run(vol, slices=range(4, 10), batch_size=4)
    assert [c[0][0] for c in det.calls] == [4, 2]  # two batches
    assert res.slices == [4, 5, 6, 7, 8, 9]
    (got,) = res.lesions
    assert (got["slice_start"], got["slice_end"]) == (4, 6)
    write_detections_json(str(tmp_path / "detections.json"), vol, res)
    write_lesions_csv(str(tmp_path / "lesions.csv"), res)
    names = write_overlays(str(tmp_path / "overlays"), vol, res)
    doc = json.loads((tmp_path / "detections.json").read_text())
    assert doc["format"] == "alignshift-volume-detections/1"
    assert [s["slice"] for s in doc["slices"]] == [4, 5, 6, 7, 8, 9]
    assert doc["geometry"]["working_frame"]["size"] == [48, 40, 12]
    assert doc["lesions"][0]["center_mm"] == pytest.approx(got["center_mm"])
    with open(tmp_path / "lesions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 1
    assert rows[0]["slice_start"] == "4" and float(rows[0]["x1"]) == 10.0
    assert names == ["lesion_001_slice_0004.png"]
    assert cv2.imread(str(tmp_path / "overlays" / names[0])).shape[:2] == (440, 528)  # x11 for display
    assert mask_filename(path) == "lesion_mask.nii.gz" and mask_filename("/d/series") == "lesion_mask.nii.gz"


def test_linking_rules():
    b = np.array([[10, 10, 20, 20, 0.9]], np.float32)
    far = np.array([[40, 40, 50, 50, 0.8]], np.float32)
    low = np.array([[10, 10, 20, 20, 0.2]], np.float32)
    cands = link_detections([b, b, far, b, low, b], [0, 1, 2, 3, 4, 5], score_thr=0.5)
    # overlap links 0-1; 2 is elsewhere; 3 starts again after the gap; 4 is below threshold; 5 alone
    assert sorted((c.slices[0], c.slices[-1]) for c in cands) == [(0, 1), (2, 2), (3, 3), (5, 5)]
    # a gap in the slices run (slices 0, 1, 3) breaks the chain too
    assert len(link_detections([b, b, b], [0, 1, 3])) == 2


def test_uneven_dicom_error_and_resample(tmp_path):
    les = ((8, 13), (8, 13), (3, 6))
    hu = phantom((10, 24, 24), [les])
    folder = write_dicom_series(str(tmp_path / "gap"), hu, (1.0, 1.0), 2.0, (0.0, 0.0, 0.0), "1.2.3.4",
                                drop=(5,))
    with pytest.raises(VolumeError, match="not uniform.*resampling interpolates") as err:
        read_volume(folder)
    assert "\n" not in str(err.value) and "--" not in str(err.value)  # no command-line words
    assert err.value.field == "resample"  # a tool adds its own option
    vol = read_volume(folder, resample=True)
    assert vol.hu.shape == (10, 24, 24) and vol.slice_interval == pytest.approx(2.0)
    np.testing.assert_allclose(vol.hu, hu, atol=1e-3)  # the missing slice lies within the cuboid
    assert any("resampled" in n for n in vol.notes)


def test_several_series_need_a_choice(tmp_path):
    hu = phantom((3, 8, 8), [])
    folder = tmp_path / "two"
    write_dicom_series(str(folder), hu, (1.0, 1.0), 2.0, (0, 0, 0), "1.2.3.10", shuffle=False)
    other = tmp_path / "tmp2"
    write_dicom_series(str(other), hu[:2], (1.0, 1.0), 3.0, (0, 0, 0), "1.2.3.20", shuffle=False, first=50)
    for f in os.listdir(other):
        os.rename(other / f, folder / ("b" + f))
    assert sorted(s.uid for s in list_dicom_series(str(folder))) == ["1.2.3.10", "1.2.3.20"]
    with pytest.raises(VolumeError, match="2 DICOM series; choose one by its SeriesInstanceUID: 1.2.3.10") \
            as err:
        read_volume(str(folder))
    assert err.value.field == "series" and "--" not in str(err.value)
    assert read_volume(str(folder), series="1.2.3.20").slice_interval == pytest.approx(3.0)
    with pytest.raises(VolumeError, match="no DICOM series 9.9"):
        read_volume(str(folder), series="9.9")


def test_clear_one_line_errors(tmp_path):
    bad = tmp_path / "corrupt.nii.gz"
    bad.write_bytes(b"this is not an image" * 10)
    (tmp_path / "empty").mkdir()
    flat = tmp_path / "flat.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((16, 16), np.int16)), str(flat))
    one = tmp_path / "one.nii"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((1, 16, 16), np.int16)), str(one))
    cases = [(bad, "cannot read it as an image"), (tmp_path / "empty", "holds no DICOM series"),
             (flat, "a 2D image of 16 x 16 voxels"),
             (one, "a single slice of 16 x 16 pixels; expected a 3D CT volume"),
             (tmp_path / "missing.nii", "does not exist")]
    for path, msg in cases:
        with pytest.raises(VolumeError) as err:
            read_volume(str(path))
        assert msg in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
