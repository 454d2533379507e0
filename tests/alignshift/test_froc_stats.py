"""FROC breakdowns, the patient bootstrap, the paired comparison and the protocol options.

The per-group oracle is a plain loop over the pooled detections (no vectorisation, no shared
code): it records every group's hits at the end of each equal-score step and reads them at the
positions where all images together reach each FP rate.
"""

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from alignshift.errors import UserError
from alignshift.evaluation import (
    EvalSet,
    FROCProtocol,
    PredictionsError,
    compare,
    evaluate,
    evaluate_file,
    froc,
    froc_breakdown,
    load_evalset,
    match_detections,
    paired_p_value,
    patient_resamples,
    plot_breakdown,
    save_comparison,
    save_report,
    weighted_sensitivity,
    write_predictions,
)
from alignshift.evaluation import bootstrap as bootstrap_mod
from alignshift.evaluation.breakdown import LESION_TYPES, make_groupings

RATES = (0.125, 0.25, 0.5, 1, 2, 3, 4, 8, 16)
TYPES = list(LESION_TYPES.values()) + ["unlabelled"]


def _iou(a, b):
    iw = max(min(a[2], b[2]) - max(a[0], b[0]) + 1, 0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]) + 1, 0)
    inter = iw * ih
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / union


def oracle_groups(preds, gts, group_of, rates):
    """Per group: sensitivity at each rate, at the FP thresholds of all images (plain loop).

    ``group_of[i][j]``: the group of lesion j of image i. Returns {group: (R,) or None}.
    """
    pooled = sorted(((float(d[4]), i, d[:4]) for i, ds in enumerate(preds) for d in ds),
                    key=lambda t: -t[0])
    hit = [[False] * len(g) for g in gts]
    n_group = {}
    for labels in group_of:
        for lab in labels:
            n_group[lab] = n_group.get(lab, 0) + 1
    hits = dict.fromkeys(n_group, 0)
    n_fp, xs, ys = 0, [], {g: [] for g in n_group}
    for k, (score, img, box) in enumerate(pooled):
        best = 0.0
        for j, g in enumerate(gts[img]):
            v = _iou(box, g)
            best = max(best, v)
            if v >= 0.5 and not hit[img][j]:
                hit[img][j] = True
                hits[group_of[img][j]] += 1
        if best < 0.5:
            n_fp += 1
        if k + 1 == len(pooled) or pooled[k + 1][0] != score:
            xs.append(n_fp / len(gts))
            for g in n_group:
                ys[g].append(hits[g] / n_group[g])
    out = {}
    for g in n_group:
        out[g] = np.interp(rates, xs, ys[g]) if xs else np.zeros(len(rates))
    return out


def random_split(seed, n_img=40, n_det=8, quantize=2, n_patients=12):
    """Random detections (with score ties) and lesions with every field the breakdowns use."""
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(n_img):
        m = int(rng.integers(0, 4))
        xy = rng.uniform(0, 60, (m, 2))
        g = np.hstack([xy, xy + rng.uniform(3, 20, (m, 2))])
        d = []
        for _ in range(int(rng.integers(0, n_det + 1))):
            if m and rng.random() < 0.6:
                b = g[rng.integers(m)] + rng.normal(0, 2, 4)
            else:
                xy0 = rng.uniform(0, 60, 2)
                b = np.concatenate([xy0, xy0 + rng.uniform(3, 20, 2)])
            b[2:] = np.maximum(b[2:], b[:2])
            d.append(np.append(b, np.round(rng.random(), quantize)))
        preds.append(np.array(d).reshape(-1, 5))
        gts.append(g.reshape(-1, 4))
    n_les = sum(len(g) for g in gts)
    if n_les == 0:
        gts[0] = np.array([[0.0, 0, 10, 10]])
        n_les = 1
    return EvalSet(file_names=[f"{i // 3:06d}_01_01/{i:03d}.png" for i in range(n_img)],
                   thickness=rng.choice([0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0], n_img),
                   pred=preds, gt=gts, patient=rng.integers(0, n_patients, n_img),
                   lesion_type=rng.choice([-1, 1, 2, 3, 4, 5, 7, 8], n_les),  # no kidney
                   diameters_mm=np.sort(rng.uniform(3, 80, (n_les, 2)), 1)[:, ::-1],
                   noisy=np.zeros(n_les, bool), source="random")


def _per_image(data, values):
    bounds = np.cumsum([0] + [len(g) for g in data.gt])
    return [list(values[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


@pytest.mark.parametrize("seed", range(10))
def test_groups_match_the_plain_loop_oracle(seed):
    data = random_split(seed, n_img=int(np.random.default_rng(seed).integers(5, 50)),
                        quantize=[1, 2, 6][seed % 3])
    protocol = FROCProtocol(fps=RATES)
    rep = evaluate(data, protocol, breakdown="type,size,interval")
    groupings = {g.name: g for g in make_groupings()}
    for name, groups in rep.breakdowns.items():
        idx = groupings[name].assign(data)
        labels = np.array(groupings[name].labels)[idx]
        want = oracle_groups(data.pred, data.gt, _per_image(data, labels), RATES)
        for label, est in groups.items():
            if label not in want:
                assert est.num_lesions == 0 and est.sens is None and est.avg is None
                continue
            assert est.num_lesions == int((labels == label).sum())
            np.testing.assert_allclose(est.sens, want[label], atol=1e-12, err_msg=f"{name}:{label}")
            assert est.avg == pytest.approx(np.mean(want[label][[2, 3, 4, 6]]), abs=1e-12)
    # the lesion-weighted mean of a grouping is All; All/Thin/Thick are the paper's
    for groups in rep.breakdowns.values():
        n = np.array([e.num_lesions for e in groups.values() if e.sens is not None])
        s = np.array([e.sens for e in groups.values() if e.sens is not None])
        np.testing.assert_allclose(n @ s / n.sum(), rep.subsets["all"].sens, atol=1e-12)
    ref = froc_breakdown(data.pred, data.gt, data.thickness, fps=RATES)
    for name in ("all", "thin", "thick"):
        if ref[name]["num_gt"]:
            np.testing.assert_allclose(rep.subsets[name].sens, ref[name]["sens"], atol=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_weighted_curves_equal_the_curves_of_copied_images(seed, monkeypatch):
    """A resample is the images copied by their weights: same sensitivities, to rounding."""
    if seed % 2:  # scan a short prefix first, so that resamples run past it and are redone
        monkeypatch.setattr(bootstrap_mod, "_PREFIX_MARGIN", 0.05)
    rng = np.random.default_rng(seed)
    data = random_split(seed, n_img=int(rng.integers(2, 30)), quantize=[1, 2, 6][seed % 3])
    m = match_detections(data.pred, data.gt)
    w = rng.integers(0, 4, size=(6, data.num_images))
    w[0] = 1
    mask = rng.random(data.num_images) < 0.6 if seed % 3 == 0 else None
    sets = np.vstack([np.ones(data.num_lesions, bool), rng.random(data.num_lesions) < 0.5])
    sens, num = weighted_sensitivity(m, w, sets, RATES, image_mask=mask)
    keep = np.ones(data.num_images, bool) if mask is None else mask
    les_img = data.gt_img
    for b in range(len(w)):
        reps = np.repeat(np.arange(data.num_images), w[b] * keep)
        for k in range(2):
            gts = [data.gt[i][sets[k][les_img == i]] for i in reps]
            assert num[b, k] == sum(len(g) for g in gts)
            if not len(reps) or num[b, k] == 0:
                assert np.isnan(sens[b, k]).all()
                continue
            want = froc([data.pred[i] for i in reps], gts).at(RATES) if k == 0 else \
                oracle_groups([data.pred[i] for i in reps], [data.gt[i] for i in reps],
                              [list(sets[1][les_img == i]) for i in reps], RATES)[True]
            np.testing.assert_allclose(sens[b, k], want, atol=1e-12)


def test_resamples_draw_patients_with_replacement():
    patients = np.array([7, 7, 3, 9, 9, 9])
    w = patient_resamples(patients, 500, seed=4)
    assert w.shape == (500, 6) and w.dtype == np.int32
    # images of one patient are drawn together; 3 patients drawn per resample
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 3] == w[:, 5]).all()
    assert (w[:, [0, 2, 3]].sum(1) == 3).all()
    assert w[:, 2].mean() == pytest.approx(1.0, abs=0.15)
    np.testing.assert_array_equal(w, patient_resamples(patients, 500, seed=4))
    assert not np.array_equal(w, patient_resamples(patients, 500, seed=5))


def _binomial_split(rng, n_patients, p_true, images_per_patient=1):
    """Each image: one lesion, found with probability p_true by a detection scored above all
    false positives; so the sensitivity at 0.5-4 FPs per image is the fraction found."""
    preds, gts, patient = [], [], []
    for pat in range(n_patients):
        for _ in range(images_per_patient):
            g = np.array([[10.0, 10, 40, 40]])
            fps = np.array([[100.0, 100, 120, 120, rng.uniform(0, 0.4)],
                            [150.0, 150, 170, 170, rng.uniform(0, 0.4)]])
            d = [fps] + ([np.array([[10.0, 10, 40, 40, rng.uniform(0.5, 1)]])]
                         if rng.random() < p_true else [])
            preds.append(np.vstack(d))
            gts.append(g)
            patient.append(pat)
    n = len(gts)
    return EvalSet([f"{i}.png" for i in range(n)], np.full(n, 5.0), preds, gts,
                   patient=np.array(patient), source="binomial")


def test_bootstrap_intervals_cover_the_known_sensitivity():
    """Splits drawn from a population with sensitivity 0.8: the 95 % intervals cover it about 95 %
    of the time, and their width is that of the binomial proportion."""
    rng = np.random.default_rng(0)
    n, p, covered, widths = 120, 0.8, 0, []
    trials = 150
    for t in range(trials):
        data = _binomial_split(rng, n, p)
        rep = evaluate(data, n_resamples=300, seed=t)
        lo, hi = rep.subsets["all"].avg_ci
        covered += lo <= p <= hi
        widths.append(hi - lo)
        assert lo <= rep.subsets["all"].avg <= hi
    assert 0.88 <= covered / trials <= 0.995
    assert np.mean(widths) == pytest.approx(2 * 1.96 * math.sqrt(p * (1 - p) / n), rel=0.12)


def test_bootstrap_resamples_patients_not_images():
    """Four identical images per patient: the interval is that of n_patients, not of n_images."""
    rng = np.random.default_rng(1)
    data = _binomial_split(rng, 60, 0.7, images_per_patient=4)
    for i in range(0, data.num_images, 4):  # a patient's images share the outcome
        for j in range(1, 4):
            data.pred[i + j] = data.pred[i].copy()
    rep = evaluate(data, n_resamples=2000, seed=0)
    lo, hi = rep.subsets["all"].avg_ci
    s = rep.subsets["all"].avg
    assert hi - lo == pytest.approx(2 * 1.96 * math.sqrt(s * (1 - s) / 60), rel=0.15)
    per_image = replace(data, patient=np.arange(data.num_images))
    lo2, hi2 = evaluate(per_image, n_resamples=2000, seed=0).subsets["all"].avg_ci
    assert (hi2 - lo2) < 0.7 * (hi - lo)


def test_paired_comparison(tmp_path):
    rng = np.random.default_rng(3)
    a = _binomial_split(rng, 150, 0.85)
    same = compare(a, a, n_resamples=300, seed=1)
    for d in same.subsets.values():
        if d.diff is None:
            continue
        assert np.all(d.diff == 0) and d.diff_avg == 0
        assert d.p_avg == 1.0 and np.all(d.p == 1.0)
        assert np.all(d.diff_avg_ci == 0)
    # B misses a third of the lesions A finds
    worse = []
    for p in a.pred:
        worse.append(p[p[:, 4] < 0.5] if (len(p) > 2 and rng.random() < 0.33) else p)
    b = replace(a, pred=worse)
    res = compare(a, b, n_resamples=500, seed=1, labels=("AlignShift", "TSM"))
    d = res.subsets["all"]
    assert d.diff_avg > 0.2 and d.diff_avg == pytest.approx(d.a_avg - d.b_avg)
    assert d.p_avg == pytest.approx(2 / 501) and d.diff_avg_ci[0] > 0
    text = res.format_text()
    assert "AlignShift - TSM" in text and "p (Avg.)" in text
    js = json.loads(res.to_json())
    assert js["subsets"]["all"]["p_avg"] == pytest.approx(2 / 501)
    assert js["bootstrap"]["resamples"] == 500
    names = save_comparison(res, str(tmp_path))
    assert sorted(names) == ["froc_compare.json", "froc_compare.md", "froc_compare.txt"]
    assert json.loads((tmp_path / "froc_compare.json").read_text()) == js
    # reversed, the difference changes sign and the p-value stays
    rev = compare(b, a, n_resamples=500, seed=1).subsets["all"]
    assert rev.diff_avg == pytest.approx(-d.diff_avg) and rev.p_avg == d.p_avg


def test_paired_p_value_formula():
    assert paired_p_value(np.zeros(9)) == 1.0
    assert paired_p_value(np.ones(9)) == pytest.approx(0.2)
    assert paired_p_value(np.array([1.0, -1, 1, 1, np.nan])) == pytest.approx(0.8)  # 2 * 2 / 5
    assert np.isnan(paired_p_value(np.full(3, np.nan)))


def test_compare_needs_the_same_images_and_ground_truth():
    a = random_split(1)
    with pytest.raises(UserError, match=r"image 000013_01_01/039.png of random is not in random"):
        compare(a, a.select_images(np.arange(a.num_images) < 39), n_resamples=0)
    b = replace(a, gt=[g + 5 for g in a.gt])
    with pytest.raises(UserError, match="disagree on the ground truth of image"):
        compare(a, b, n_resamples=0)
    # the order of the images does not matter
    b = a.select_images(np.ones(a.num_images, bool))
    order = np.arange(a.num_images)[::-1]
    b = replace(b, file_names=[b.file_names[i] for i in order], pred=[b.pred[i] for i in order],
                gt=[b.gt[i] for i in order])
    assert compare(a, b, n_resamples=0).subsets["all"].diff_avg == 0


def test_empty_group_is_n_0_and_a_picked_empty_group_is_an_error(tmp_path):
    data = random_split(2, n_img=60)
    rep = evaluate(data, breakdown="type", n_resamples=50)
    kidney = rep.breakdowns["type"]["kidney"]
    assert kidney.num_lesions == 0 and kidney.sens is None
    line = next(ln for ln in rep.format_text().splitlines() if ln.startswith("kidney"))
    assert "(n = 0)" in line and "%" not in line and "0.00" not in line and "100.00" not in line
    assert "kidney (n = 0) | - |" in rep.format_markdown()
    js = json.loads(rep.to_json())
    assert js["breakdowns"]["type"]["groups"]["kidney"] == {"num_lesions": 0, "sens": None,
                                                           "avg": None}
    png = plot_breakdown(rep, str(tmp_path / "bars.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UserError, match=r"^random: group type:kidney has no lesions in this split$"):
        evaluate(data, breakdown="type:kidney")
    picked = evaluate(data, breakdown="type:liver,interval:>3")
    assert list(picked.breakdowns["type"]) == ["liver"] and list(picked.breakdowns["interval"]) == [">3"]
    with pytest.raises(UserError, match="unknown group 'livr' of breakdown type: expected one of bone"):
        evaluate(data, breakdown="type:livr")
    with pytest.raises(UserError, match="unknown breakdown 'organ'"):
        evaluate(data, breakdown="organ")
    with pytest.raises(UserError, match="size bin edges must be increasing"):
        evaluate(data, breakdown="size", size_bins=(20, 10))


def test_bins_are_configurable_and_closed_as_documented():
    data = random_split(4, n_img=30)
    data.diameters_mm[:3, 0] = [9.99, 10.0, 50.0]
    data.thickness[:] = 2.0
    rep = evaluate(data, breakdown="size,interval", size_bins=(10, 50), interval_bins=(2,))
    assert list(rep.breakdowns["size"]) == ["<10", "10-50", ">=50"]
    assert list(rep.breakdowns["interval"]) == ["<=2", ">2"]
    assert rep.breakdowns["interval"]["<=2"].num_lesions == data.num_lesions  # 2 mm is thin
    g = {x.name: x for x in make_groupings(("size",), size_bins=(10, 50))}["size"]
    assert list(g.assign(data)[:3]) == [0, 1, 2]


def test_save_report_writes_every_form(tmp_path):
    data = random_split(5, n_img=40)
    rep = evaluate(data, breakdown="type,size,interval", n_resamples=30, seed=2)
    names = save_report(rep, str(tmp_path))
    assert sorted(names) == sorted(f"froc_breakdown.{e}" for e in ("txt", "md", "json", "png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    js = json.loads((tmp_path / "froc_breakdown.json").read_text())
    assert js["bootstrap"] == {"unit": "patient", "resamples": 30, "seed": 2, "level": 0.95,
                               "method": "percentile"}
    assert js["protocol"]["noisy_lesions"] == "excluded" and js["protocol"]["iou_thr"] == 0.5
    all_ = js["subsets"]["all"]
    assert len(all_["sens"]) == 6 and len(all_["sens_ci"]) == 6 and len(all_["avg_ci"]) == 2
    assert all_["sens_ci"][3][0] <= all_["sens"][3] <= all_["sens_ci"][3][1]
    text = (tmp_path / "froc_breakdown.txt").read_text()
    assert "protocol: noisy lesions excluded (as published); hit: IoU >= 0.5" in text
    assert "1000" not in text.splitlines()[3] and "30 resamples of the patients" in text


def test_protocol_options_iobb_avg_and_header():
    gt = [np.array([[0.0, 0, 19, 19]])]
    inner = [np.array([[5.0, 5, 9, 9, 0.9]])]  # inside the lesion: IoU 0.0625, IoBB 1
    data = EvalSet(["a.png"], np.array([1.0]), inner, gt, source="one")
    assert evaluate(data).subsets["all"].sens[0] == 0
    iobb = evaluate(data, FROCProtocol(criterion="iobb"))
    assert iobb.subsets["all"].sens[0] == 1
    assert "hit: IoBB (intersection over the detected box) >= 0.5" in iobb.format_text()
    data = random_split(6)
    mp3d = evaluate(data, FROCProtocol(avg="mp3d"))
    ref = froc(data.pred, data.gt).at((0.5, 1, 2, 3, 4, 8))
    assert mp3d.subsets["all"].avg == pytest.approx(ref.mean())
    assert len(mp3d.subsets["all"].sens) == 6  # the reported rates stay 0.5-16
    assert "Avg.(MP3D) = mean sensitivity at 0.5, 1, 2, 3, 4, 8 FPs per image" in mp3d.format_text()
    with pytest.raises(ValueError, match="avg must be one of"):
        FROCProtocol(avg="0.125-8")


def test_noisy_lesions_excluded_or_kept():
    base = random_split(7, n_img=20)
    noisy = np.zeros(base.num_lesions, bool)
    noisy[:3] = True
    only = np.flatnonzero([len(g) for g in base.gt])[0]
    noisy[base.gt_img == only] = True  # an image whose lesions are all noisy
    data = replace(base, noisy=noisy, noisy_lesions="kept")
    ex = evaluate(data)
    kept = evaluate(data, FROCProtocol(noisy="kept"))
    assert kept.num_lesions == data.num_lesions
    assert ex.num_lesions == data.num_lesions - noisy.sum()
    assert ex.num_images == data.num_images - 1  # the all-noisy image leaves the test set
    assert "noisy lesions kept" in kept.format_text()
    with pytest.raises(PredictionsError, match="written without the noisy lesions"):
        evaluate(replace(data, noisy_lesions="excluded"), FROCProtocol(noisy="kept"))
    with pytest.raises(PredictionsError, match="does not say whether noisy lesions were left out"):
        evaluate(replace(data, noisy=np.zeros_like(noisy), noisy_lesions=None),
                 FROCProtocol(noisy="kept"))
    with pytest.raises(PredictionsError, match="has no field 'gt_noisy'"):
        evaluate(replace(data, noisy=None), FROCProtocol(noisy="kept"))


GOOD = {"file_name": "000001_01_01/1.png", "thickness": 5.0, "gt_boxes": [[0, 0, 10, 10]],
        "pred_boxes": [[0, 0, 10, 10, 0.9], [30, 30, 40, 40, 0.5]]}


def test_old_predictions_files_lack_only_what_needs_the_new_fields(tmp_path):
    path = write_predictions([GOOD, {**GOOD, "file_name": "000002_01_01/1.png", "thickness": 1.0}],
                             str(tmp_path / "old.json"))
    rep = evaluate_file(path, breakdown="interval")  # needs the thickness only
    assert rep.breakdowns["interval"]["<=1"].num_lesions == 1
    with pytest.raises(PredictionsError, match=r"^.*old.json: images\[0\] \(000001_01_01/1.png\) has "
                                               r"no field 'patient', which the patient bootstrap needs$"):
        evaluate_file(path, n_resamples=10)
    with pytest.raises(PredictionsError, match="has no field 'gt_lesion_type', which the breakdown "
                                               "by lesion type needs"):
        evaluate_file(path, breakdown="type")
    with pytest.raises(PredictionsError, match="no field 'gt_diameters_mm'"):
        evaluate_file(path, breakdown="size")


def test_new_predictions_fields_are_read_and_checked(tmp_path):
    rec = {**GOOD, "patient": 1, "gt_lesion_type": [4], "gt_diameters_mm": [[12.5, 8.0]],
           "gt_noisy": [False]}
    path = write_predictions([rec, {**rec, "file_name": "000002_01_01/1.png", "patient": 2,
                                    "gt_lesion_type": [5]}], str(tmp_path / "p.json"), "excluded")
    data, _ = load_evalset(path)
    assert data.patient.tolist() == [1, 2] and data.lesion_type.tolist() == [4, 5]
    assert data.diameters_mm.tolist() == [[12.5, 8.0], [12.5, 8.0]] and data.noisy_lesions == "excluded"
    rep = evaluate(data, breakdown="type,size", n_resamples=20)
    assert rep.breakdowns["type"]["liver"].num_lesions == 1
    assert rep.breakdowns["size"]["10-20"].num_lesions == 2
    for bad, match in (({"gt_lesion_type": [9]}, "'gt_lesion_type' must hold 1 lesion type codes"),
                       ({"gt_lesion_type": [4, 4]}, "'gt_lesion_type' must hold 1"),
                       ({"gt_diameters_mm": [[1, -2]]}, "'gt_diameters_mm' must hold 1"),
                       ({"gt_noisy": [1]}, "'gt_noisy' must hold 1 true/false"),
                       ({"patient": 1.5}, "'patient' must be a whole number")):
        p = write_predictions([{**rec, **bad}], str(tmp_path / "bad.json"))
        with pytest.raises(PredictionsError, match=r"bad.json: images\[0\] \(000001_01_01/1.png\): "
                                                   "field " + match):
            load_evalset(p)


def _annotations(tmp_path, include_noisy=None, drop=()):
    from alignshift.data import make_synthetic_deeplesion, parse_dl_info, records_to_coco, select_split

    root = tmp_path / "DL"
    make_synthetic_deeplesion(str(root), num_images=40, image_size=64, seed=5, progress=False)
    recs, _ = select_split(parse_dl_info(str(root / "DL_info.csv")), "test",
                           include_noisy=bool(include_noisy))
    coco = records_to_coco(recs, "test", include_noisy)
    for a in coco["annotations"]:
        for k in drop:
            a.pop(k, None)
    for img in coco["images"]:
        for k in drop:
            img.pop(k, None)
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(coco))
    return str(path), coco, recs


def test_annotations_carry_what_the_breakdowns_need(tmp_path):
    gt_path, coco, recs = _annotations(tmp_path, include_noisy=False)
    assert coco["info"]["noisy_lesions"] == "excluded"
    ann, img = coco["annotations"][0], coco["images"][0]
    assert ann["diameters_mm"] == pytest.approx([d * img["spacing"][0] for d in ann["diameters"]],
                                                abs=1e-3)
    assert img["patient"] == recs[0].patient and ann["lesion_type"] in range(1, 9)
    preds = [{"file_name": r.file_name, "thickness": r.thickness,
              "pred_boxes": [list(map(float, les.box)) + [0.9] for les in r.lesions]}
             for r in recs[1:]]
    pred_path = write_predictions(preds, str(tmp_path / "p.json"))
    rep = evaluate_file(pred_path, gt_path, breakdown="type,size,interval", n_resamples=20)
    assert rep.num_patients == len({r.patient for r in recs})
    assert rep.notes and "1 images of" in rep.notes[0]
    n_hit = sum(len(r.lesions) for r in recs[1:])
    assert rep.subsets["all"].sens[-1] == pytest.approx(n_hit / rep.num_lesions)
    # older annotation files: mm diameters from pixels x spacing, the same groups
    old_path, _, _ = _annotations(tmp_path / "old", drop=("diameters_mm",))
    old = evaluate_file(pred_path, old_path, breakdown="size")
    assert {k: e.num_lesions for k, e in old.breakdowns["size"].items()} == \
        {k: e.num_lesions for k, e in rep.breakdowns["size"].items()}
    # annotations without patient: the bootstrap names the field of the annotation file
    no_pat, _, _ = _annotations(tmp_path / "nopat", drop=("patient",))
    with pytest.raises(PredictionsError, match=r"has no field 'patient', which the patient bootstrap"):
        evaluate_file(pred_path, no_pat, n_resamples=5)


def test_bad_input_is_one_line_naming_the_image(tmp_path):
    gt_path, _, recs = _annotations(tmp_path)
    stray = {"file_name": "999999_01_01/001.png", "thickness": 1.0, "pred_boxes": []}
    pred_path = write_predictions([stray], str(tmp_path / "p.json"))
    with pytest.raises(PredictionsError, match=r"^1 predicted images are not in .*ann.json, "
                                               r"e.g. 999999_01_01/001.png; is it the annotation"):
        evaluate_file(pred_path, gt_path)
    dup = {"file_name": recs[0].file_name, "thickness": 1.0, "pred_boxes": []}
    pred_path = write_predictions([dup, dup], str(tmp_path / "d.json"))
    with pytest.raises(PredictionsError, match=rf"images\[1\] \({recs[0].file_name}\): names the "
                                               r"same image as images\[0\]"):
        evaluate_file(pred_path, gt_path)
    for err in (PredictionsError, UserError):
        assert issubclass(PredictionsError, err)


def test_evalset_from_arrays_for_a_paired_comparison():
    """What reproduce's variant-vs-variant comparison calls: arrays in, the same EvalSet as a file."""
    a = random_split(4, n_img=45)
    per_image = lambda v: _per_image(a, v)  # noqa: E731
    arr = EvalSet.from_arrays(a.pred, a.gt, a.thickness, a.patient, a.file_names,
                              lesion_type=per_image(a.lesion_type), diameters_mm=per_image(a.diameters_mm),
                              noisy=per_image(a.noisy), source="variant A")
    for f in ("patient", "lesion_type", "diameters_mm", "noisy", "thickness"):
        assert np.array_equal(getattr(arr, f), getattr(a, f)), f
    assert all(np.array_equal(x, y) for x, y in zip(arr.pred, a.pred))
    want = evaluate(a, breakdown="type,size,interval", n_resamples=50).to_dict()
    got = evaluate(arr, breakdown="type,size,interval", n_resamples=50).to_dict()
    assert got["subsets"] == want["subsets"] and got["breakdowns"] == want["breakdowns"]
    # another detector on the same split: with_predictions keeps images, lesions and patients
    other = [p[p[:, 4] > 0.5] for p in a.pred]
    b = arr.with_predictions(other, source="variant B")
    assert b.source == "variant B" and np.array_equal(b.patient, arr.patient)
    res = compare(arr, b, breakdown="interval", n_resamples=100, labels=("A", "B"))
    assert res.subsets["all"].diff_avg == pytest.approx(
        evaluate(arr).subsets["all"].avg - evaluate(b).subsets["all"].avg)
    assert compare(arr, arr.with_predictions(a.pred), n_resamples=100).subsets["all"].p_avg == 1.0
    # checked as a predictions file is
    with pytest.raises(PredictionsError, match=r"pred has 3 entries, gt has 45 images"):
        EvalSet.from_arrays(a.pred[:3], a.gt, a.thickness)
    bad = [p.copy() for p in a.pred]
    bad[1] = np.array([[10, 10, 5, 20, 0.5]])
    with pytest.raises(PredictionsError, match=r"variant B: images\[1\]: pred_boxes\[0\] = .* is inverted"):
        arr.with_predictions(bad, source="variant B")
    with pytest.raises(PredictionsError, match=r"has no field 'patient', which the patient bootstrap"):
        evaluate(EvalSet.from_arrays(a.pred, a.gt, a.thickness), n_resamples=10)
