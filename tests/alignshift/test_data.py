import csv
import hashlib
import os
import warnings

import cv2
import numpy as np
import pytest

from alignshift.data import (
    DL_INFO_COLUMNS,
    DLInfoError,
    is_thin,
    load_multislice,
    make_synthetic_deeplesion,
    parse_dl_info,
    select_split,
    window,
)

REAL_ROWS = [
    '000001_01_01_109.png,1,1,1,109,"233.537, 95.0204, 234.057, 106.977, 231.169, 101.605, 236.252, '
    '101.143","226.169, 90.0204, 241.252, 111.977","11.9677, 5.10387","0.44666, 0.283794, 0.434454",'
    '3,0,"103, 115","0.488281, 0.488281, 5","512, 512","-175, 275",F,62,3',
    '000092_02_03_212.png,92,2,3,212,"187.548, 325.565, 176.417, 312.765, 180.313, 324.452, 189.774, '
    '318.887","171.417, 307.765, 194.774, 330.565","16.9625, 10.9763","0.297733, 0.734484, 0.559561",'
    '-1,0,"182, 242","0.859375, 0.859375, 1","512, 512","-1500, 500",M,40,1',
]


def write_csv(path, rows):
    path.write_text(",".join(DL_INFO_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    return str(path)


def test_real_rows_parse(tmp_path):
    recs = parse_dl_info(write_csv(tmp_path / "DL_info.csv", REAL_ROWS))
    a, b = recs
    assert a.file_name == "000001_01_01/109.png" and a.key_slice == 109
    assert a.thickness == 5.0 and a.spacing[:2] == (0.488281, 0.488281)
    assert a.slice_range == (103, 115) and a.window == (-175.0, 275.0) and a.split == 3
    assert a.gender == "F" and a.age == 62 and a.image_size == (512, 512)
    les = a.lesions[0]
    np.testing.assert_allclose(les.box, [225.169, 89.0204, 240.252, 110.977])
    np.testing.assert_allclose(les.recist[:2], [232.537, 94.0204])
    np.testing.assert_allclose(les.diameters, [11.9677, 5.10387])
    assert les.lesion_type == 3 and not les.noisy
    assert b.thickness == 1.0 and b.lesions[0].lesion_type == -1 and b.split == 1
    assert is_thin(b.thickness) and not is_thin(a.thickness)


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r.replace('"103, 115"', '"103"'), r"line 2, column Slice_range: expected 2"),
    (lambda r: r.replace(",3,0,", ",9,0,"), r"line 2, column Coarse_lesion_type"),
    (lambda r: r.replace('"0.488281, 0.488281, 5"', '"0.48, 0.48, abc"'), r"column Spacing_mm_px_"),
    (lambda r: r.replace(",F,62,3", ",F,62,7"), r"line 2, column Train_Val_Test"),
    (lambda r: r.rsplit(",", 1)[0], r"line 2: expected 18 columns"),
    (lambda r: r.replace(",F,62,", ",F,sixty,"), r"column Patient_age"),
])
def test_malformed_rows_name_line_and_column(tmp_path, mutate, match):
    path = write_csv(tmp_path / "DL_info.csv", [mutate(REAL_ROWS[0])])
    with pytest.raises(DLInfoError, match=match) as err:
        parse_dl_info(path)
    assert "DL_info.csv" in str(err.value)


def test_bad_header(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(DLInfoError, match="line 1"):
        parse_dl_info(str(p))


def test_synthetic_release_format_with_independent_reader(synthetic_root):
    csv_path = synthetic_root / "DL_info.csv"
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0].keys()) == list(DL_INFO_COLUMNS)
    recs = {r.file_name: r for r in parse_dl_info(str(csv_path))}
    assert sum(len(r.lesions) for r in recs.values()) == len(rows)
    for row in rows:
        series, key = row["File_name"].rsplit("_", 1)
        folder = synthetic_root / "Images_png" / series
        files = sorted(int(f[:-4]) for f in os.listdir(folder))
        lo, hi = (int(v) for v in row["Slice_range"].split(","))
        assert (files[0], files[-1]) == (lo, hi)  # Slice_range matches what is shipped
        assert int(key[:-4]) == int(row["Key_slice_index"]) and os.path.exists(folder / key)
        png = cv2.imread(str(folder / key), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint16 and png.shape == (96, 96)
        hu = png.astype(np.int32) - 32768
        assert hu.min() >= -1200 and hu.max() <= 1000  # air .. bone
        pts = np.array([float(v) for v in row["Measurement_coordinates"].split(",")])
        box = np.array([float(v) for v in row["Bounding_boxes"].split(",")])
        np.testing.assert_allclose(box, [pts[0::2].min() - 5, pts[1::2].min() - 5,
                                         pts[0::2].max() + 5, pts[1::2].max() + 5], atol=1e-3)
        long_d = np.hypot(pts[2] - pts[0], pts[3] - pts[1])
        short_d = np.hypot(pts[6] - pts[4], pts[7] - pts[5])
        diam = [float(v) for v in row["Lesion_diameters_Pixel_"].split(",")]
        np.testing.assert_allclose([long_d, short_d], diam, rtol=1e-3)
        assert long_d >= short_d
        rec = recs[f"{series}/{key}"]
        lesion = next(les for les in rec.lesions if np.allclose(les.box, box - 1, atol=1e-3))
        np.testing.assert_allclose(lesion.recist, pts - 1, atol=1e-4)
        # the lesion differs from soft tissue (40 HU) by 60-160 HU at its centre (noise ~12 HU)
        cx, cy = int(round(pts[0:3:2].mean())), int(round(pts[1:4:2].mean()))
        assert abs(hu[cy, cx] - 40) > 30
    thick = [r.thickness for r in recs.values()]
    assert any(t <= 2 for t in thick) and any(t == 5 for t in thick)
    assert any(len(r.lesions) > 1 for r in recs.values())
    for split in ("train", "val", "test"):
        assert select_split(list(recs.values()), split)[0]


def test_synthetic_is_deterministic(tmp_path):
    def digest(root):
        h = hashlib.sha256()
        for dirpath, _, files in sorted(os.walk(root)):
            for f in sorted(files):
                h.update(f.encode())
                h.update(open(os.path.join(dirpath, f), "rb").read())
        return h.hexdigest()

    a = make_synthetic_deeplesion(str(tmp_path / "a"), 6, 64, seed=5, progress=False)
    b = make_synthetic_deeplesion(str(tmp_path / "b"), 6, 64, seed=5, progress=False)
    c = make_synthetic_deeplesion(str(tmp_path / "c"), 6, 64, seed=6, progress=False)
    da, db, dc = (digest(os.path.dirname(p)) for p in (a, b, c))
    assert da == db != dc
    assert not os.path.exists(str(tmp_path / "a") + ".partial")


def make_series(root, interval_slices, missing=(), width=3):
    """A series whose slice k holds the constant HU value 10 * k."""
    folder = root / "000001_01_01"
    folder.mkdir(parents=True, exist_ok=True)
    for k in interval_slices:
        if k in missing:
            continue
        im = np.full((4, 5), 10 * k + 32768, np.uint16)
        cv2.imwrite(str(folder / f"{k:0{width}d}.png"), im)
    return str(root)


def values(im):
    assert im.shape[:2] == (4, 5) and im.dtype == np.float32
    assert np.all(im == im[:1, :1])  # constant per slice
    return im[0, 0].tolist()


def test_interpolation_between_neighbours(tmp_path):
    root = make_series(tmp_path, range(1, 40))
    # 5 mm series, 2 mm apart: offsets 0.4 slice -> 10 * (20 +- 0.4 j) linearly interpolated
    got = values(load_multislice(root, "000001_01_01/020.png", 5.0, 7, 2.0))
    np.testing.assert_allclose(got, [10 * (20 + 0.4 * j) for j in range(-3, 4)], rtol=1e-6)
    # 1 mm series: exactly every other slice
    assert values(load_multislice(root, "000001_01_01/020.png", 1.0, 5, 2.0)) == [160, 180, 200, 220, 240]
    # 0.625 mm: 3.2 slices apart
    got = values(load_multislice(root, "000001_01_01/020.png", 0.625, 3, 2.0))
    np.testing.assert_allclose(got, [10 * (20 - 3.2), 200, 10 * (20 + 3.2)], rtol=1e-6)
    # AlignShift setting: thick series keep their native neighbours
    assert values(load_multislice(root, "000001_01_01/020.png", 5.0, 7, 2.0, interpolate=False)) == \
        [170, 180, 190, 200, 210, 220, 230]
    # ... thin ones are still resampled to 2 mm
    assert values(load_multislice(root, "000001_01_01/020.png", 1.0, 3, 2.0, interpolate=False)) == \
        [180, 200, 220]


def test_missing_neighbour_falls_back_towards_key(tmp_path):
    root = make_series(tmp_path, range(15, 24), missing={18, 19, 23})
    got = values(load_multislice(root, "000001_01_01/020.png", 1.0, 7, 1.0))
    # wanted 17..23 with 18, 19 and 23 missing: 18 and 19 walk towards the key (20), 23 to 22
    assert got == [170, 200, 200, 200, 210, 220, 220]
    # beyond the shipped range: the last existing slice on that side
    got = values(load_multislice(root, "000001_01_01/020.png", 1.0, 11, 1.0))
    assert got[0] == 150 and got[-1] == 220


def test_bad_interval_repeats_key_with_warning(tmp_path):
    root = make_series(tmp_path, range(18, 23))
    for bad in (float("nan"), 0.0, -1.0):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            got = values(load_multislice(root, "000001_01_01/020.png", bad, 3))
        assert got == [200, 200, 200] and "repeating the key slice" in str(w[0].message)


def test_missing_key_and_bad_png_name_the_path(tmp_path):
    root = make_series(tmp_path, range(18, 23))
    with pytest.raises(FileNotFoundError, match="000001_01_01/030.png"):
        load_multislice(root, "000001_01_01/030.png", 1.0, 3)
    (tmp_path / "000001_01_01" / "025.png").write_bytes(b"not a png")
    with pytest.raises(FileNotFoundError, match="025.png"):
        load_multislice(root, "000001_01_01/025.png", 1.0, 3)


def test_window():
    hu = np.array([-2000.0, -1024.0, 513.0, 2050.0, 3000.0], np.float32)
    np.testing.assert_allclose(window(hu), [0, 0, 127.5, 255, 255])
    np.testing.assert_allclose(window(hu, (0, 100)), [0, 0, 255, 255, 255])
    assert hu[0] == -2000.0  # input untouched
    with pytest.raises(ValueError, match="window"):
        window(hu, (10, 10))


def test_multislice_plan_lists_each_png_once(tmp_path):
    from alignshift.data import multislice_plan

    root = make_series(tmp_path, range(10, 30), missing={22})
    paths, mix = multislice_plan(root, "000001_01_01/020.png", 5.0, 7, 2.0)
    assert paths[0].endswith("020.png") and len(set(paths)) == len(paths)
    assert not any(p.endswith("022.png") for p in paths)  # missing: 21 stands in
    np.testing.assert_allclose(mix.sum(0), np.ones(7), rtol=1e-6)
    assert mix.shape == (len(paths), 7)


def test_full_16bit_range_maps_to_hu_exactly(tmp_path):
    folder = tmp_path / "000001_01_01"
    folder.mkdir()
    stored = np.array([[0, 1, 32767, 32768], [32769, 40000, 65534, 65535]], np.uint16)
    for k in range(18, 23):
        cv2.imwrite(str(folder / f"{k:03d}.png"), stored)
    hu = stored.astype(np.float64) - 32768
    want = np.repeat(hu[..., None], 3, axis=2)
    # whole-slice channels are exact; 0.4/0.6 blends of equal slices round in float32
    for interpolate, interval, rtol in ((False, 5.0, 0), (True, 1.0, 0), (True, 5.0, 1e-6)):
        got = load_multislice(str(tmp_path), "000001_01_01/020.png", interval, 3, 2.0, interpolate)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


def test_every_bad_row_is_collected(tmp_path):
    bad = [REAL_ROWS[0].replace('"103, 115"', '"103"'), REAL_ROWS[1].replace(",F,62,", ",F,x,"),
           "abc.png" + REAL_ROWS[0][len("000001_01_01_109.png"):],
           REAL_ROWS[0].replace('"0.488281, 0.488281, 5"', '"0.48, 0.48, 0"')]
    path = write_csv(tmp_path / "DL_info.csv", [bad[0], REAL_ROWS[1], *bad[2:]])
    errors = []
    recs = parse_dl_info(path, errors=errors)
    assert [r.file_name for r in recs] == ["000092_02_03/212.png"]
    assert [str(e).split(": ")[1] for e in errors] == [
        "line 2, column Slice_range", "line 4, column File_name", "line 5, column Spacing_mm_px_"]
    from alignshift.errors import UserError

    assert all(isinstance(e, UserError) for e in errors)  # tools print them as one line


def test_missing_neighbours_counts_fallbacks(tmp_path):
    from alignshift.data import missing_neighbours

    root = make_series(tmp_path, range(15, 24), missing={18, 19, 23})
    assert missing_neighbours(root, "000001_01_01/020.png", 1.0, 7, 1.0) == [18, 19, 23]
    assert missing_neighbours(root, "000001_01_01/020.png", 1.0, 3, 1.0) == [19]
    assert missing_neighbours(root, "000001_01_01/020.png", 5.0, 3, 2.0, interpolate=False) == [19]


def test_synthetic_generator_refuses_a_release_it_would_overwrite(tmp_path):
    from alignshift.errors import UserError

    out = tmp_path / "syn"
    (out).mkdir()
    (out / "beside.txt").write_text("keep")
    make_synthetic_deeplesion(str(out), num_images=2, image_size=64, progress=False)
    with pytest.raises(UserError, match="already holds DL_info.csv, Images_png"):
        make_synthetic_deeplesion(str(out), num_images=2, image_size=64, progress=False)
    assert (out / "beside.txt").read_text() == "keep"
    assert len(parse_dl_info(str(out / "DL_info.csv"))) == 2


def test_synthetic_tool_never_deletes_what_it_did_not_write(tmp_path):
    from alignshift.apps.make_synthetic_deeplesion import write_synthetic
    from alignshift.errors import UserError

    user = tmp_path / "mine"
    user.mkdir()
    (user / "keep.txt").write_text("keep")
    with pytest.raises(UserError, match="is not empty and was not written by make_synthetic"):
        write_synthetic(str(user), num_images=1, image_size=64, progress=False)
    assert os.listdir(user) == ["keep.txt"]
    out = tmp_path / "syn"
    write_synthetic(str(out), num_images=2, image_size=64, progress=False)
    (out / "beside.txt").write_text("keep")
    with pytest.raises(UserError, match="already holds a synthetic DeepLesion; pass --force"):
        write_synthetic(str(out), num_images=2, image_size=64, progress=False)
    (out / "Images_png" / "inside.txt").write_text("keep")
    with pytest.raises(UserError, match="holds Images_png/inside.txt"):
        write_synthetic(str(out), num_images=2, image_size=64, progress=False, force=True)
    assert (out / "DL_info.csv").exists()  # refused before anything was removed
    (out / "Images_png" / "inside.txt").unlink()
    write_synthetic(str(out), num_images=3, image_size=64, progress=False, force=True)
    assert (out / "beside.txt").read_text() == "keep" and (user / "keep.txt").read_text() == "keep"
    assert len(parse_dl_info(str(out / "DL_info.csv"))) == 3
    assert sorted(os.listdir(tmp_path)) == ["mine", "syn"]  # no sibling temp folder either
