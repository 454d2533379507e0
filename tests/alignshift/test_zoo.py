"""alignshift.apps.zoo: index, conversion of the published key layout, mmdet 1.x box conventions, slices."""

from __future__ import annotations

import json
import math
import os

import cv2
import numpy as np
import pytest
import torch
import yaml

from alignshift.apps.zoo import (
    CheckpointLayoutError,
    ZooIndexError,
    convert_v1_checkpoint,
    find_entry,
    load_index,
    published_backbone_shapes,
)
from alignshift.apps.zoo.testing import fake_published_checkpoint
from alignshift.boxes import v1_base_anchors, v1_delta2bbox, v1_grid_anchors
from alignshift.data.published import load_published_multislice, published_slice_plan
from alignshift.evaluation import DEFAULT_FPS
from alignshift.evaluation.paper import compare_with_paper, paper_results
from alignshift.ops import align_shift, tsm_shift

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def published3():
    return fake_published_checkpoint(3, "alignshift", seed=1)


# ---------------------------------------------------------------- index and paper figures

def test_metafile_lists_every_model_with_config_and_paper_figures_from_the_one_json():
    entries = load_index()
    assert [e.name for e in entries] == ["alignshift_3slice", "alignshift_7slice", "tsm_3slice", "tsm_7slice"]
    doc = paper_results()
    names = {"DeepLesion": "all", "DeepLesion thin (<= 2 mm)": "thin", "DeepLesion thick (> 2 mm)": "thick"}
    for e in entries:
        assert os.path.isfile(os.path.join(ROOT, e.config)), e.config
        assert e.drive_folder_id == "1_ApYs5vb_VzkdqK02lb861Psj-GSdznV"
        assert any("baidu" in m and "h2wc" in m for m in e.mirrors)
        pub = doc["variants"][e.paper_variant]
        assert (pub["slices"], pub["method"].lower()) == (e.slices, e.conv)
        assert len(e.results) == 3
        for res in e.results:  # the metafile's copy equals paper_results.json
            ref = pub[names[res["Dataset"]]]
            want = {f"FROC@{f:g}": 100 * s for f, s in zip(DEFAULT_FPS, ref["sens"])}  # metafiles: percent
            want["FROC Avg.[0.5-4]"] = 100 * ref["avg"]
            assert res["Metrics"] == pytest.approx(want, abs=1e-9)


def test_model_index_imports_the_metafile():
    """Both are package data: the index is read from the installed package, beside its metafile."""
    from alignshift.apps.zoo.index import default_index_path

    index = default_index_path()
    assert os.path.dirname(index) == os.path.join(ROOT, "alignshift", "apps", "zoo")
    with open(index) as f:
        assert yaml.safe_load(f) == {"Import": ["metafile.yml"]}
    assert {e.metafile for e in load_index()} == {os.path.join(os.path.dirname(index), "metafile.yml")}


def test_index_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "meta.yml"
    bad.write_text("Models:\n  - Name: x\n    Config: c.py\n    Weights: ftp://x\n"
                   "    Metadata: {Conv: tsm, Slices: 3}\n")
    with pytest.raises(ZooIndexError, match=r"meta\.yml: model 'x': 'Weights' must be an http"):
        load_index(str(bad))
    bad.write_text("Models:\n  - Name: x\n    Config: c.py\n    Weights: http://h/x.pth\n"
                   "    Metadata: {Conv: tsm}\n")
    with pytest.raises(ZooIndexError, match="'Metadata.Slices' is missing"):
        load_index(str(bad))
    with pytest.raises(KeyError, match="known: alignshift_3slice"):
        find_entry(load_index(), "nope")


def test_compare_with_paper_lays_measured_beside_published():
    measured = {s: {"sens": [0.5] * 6, "avg": 0.5} for s in ("all", "thin", "thick")}
    text = compare_with_paper(measured, "alignshift_7slice")
    lines = text.splitlines()
    assert "AlignShift, 7 slices" in lines[0]
    paper_all = next(ln for ln in lines if ln.strip().startswith("All"))
    assert "79.40" in paper_all and "87.06" in paper_all
    assert lines[lines.index(paper_all) + 1].split("|")[2].strip() == "50.00"
    assert lines[lines.index(paper_all) + 2].split("|")[2].strip() == "-29.40"
    assert sum(ln.strip().startswith(("Thin", "Thick")) for ln in lines) == 2


# ---------------------------------------------------------------- conversion

def test_shipped_backbone_fixture_is_the_shared_one():
    with open(os.path.join(ROOT, "alignshift", "apps", "zoo", "official_alignshift_backbone_keys.json")) as f:
        shipped = json.load(f)
    assert set(shipped) == {"backbone_3slice", "backbone_7slice"}
    assert len(published_backbone_shapes(7)) == 531
    red3 = published_backbone_shapes(7)["backbone.reductionz3.reduction_z_conv.weight"]
    assert red3 == (1024, 1024, 7, 1, 1)


def test_conversion_consumes_or_reports_every_key(published3):
    out, report = convert_v1_checkpoint(published3)
    src = published3["state_dict"]
    accounted = ([s for s, _ in report.renamed] + [s for s, _, _ in report.changed]
                 + [s for s, _ in report.dropped])
    assert sorted(accounted) == sorted(src)
    assert {s for s, _ in report.dropped} == {k for k in src if k.startswith("mask_head.")}
    text = "\n".join(report.lines())
    assert "dropped the mask head (12 tensors" in text and "does not change box predictions" in text
    assert "optimizer" in text and report.other_top_level == ["optimizer"]
    assert (report.variant, report.num_slices) == ("alignshift", 3)


def test_heads_rpn_untouched_background_last_lesion_rows_kept(published3):
    out, _ = convert_v1_checkpoint(published3)
    sd, src = out["state_dict"], published3["state_dict"]
    for k in ("rpn_head.rpn_cls.weight", "rpn_head.rpn_cls.bias", "rpn_head.rpn_reg.weight",
              "rpn_head.rpn_reg.bias", "rpn_head.rpn_conv.weight"):
        assert torch.equal(sd[k], src[k]), k
    for p in ("weight", "bias"):
        assert torch.equal(sd[f"roi_head.bbox_head.fc_cls.{p}"][0], src[f"bbox_head.fc_cls.{p}"][1])
        assert torch.equal(sd[f"roi_head.bbox_head.fc_cls.{p}"][1], src[f"bbox_head.fc_cls.{p}"][0])
        assert torch.equal(sd[f"roi_head.bbox_head.fc_reg.{p}"], src[f"bbox_head.fc_reg.{p}"][4:8])
    assert sd["roi_head.bbox_head.fc_reg.weight"].shape == (4, 2048)
    assert torch.equal(sd["backbone.net.top_down.laterals.2.weight"], src["backbone.lateral4.weight"])
    assert torch.equal(sd["backbone.net.reductions.0.weight"],
                       src["backbone.reductionz1.reduction_z_conv.weight"])
    assert torch.equal(sd["backbone.net.reductions.0.bias"], torch.zeros(256))
    assert torch.equal(sd["backbone.net.body.model.features.denseblock2.denselayer3.conv2.weight"],
                       src["backbone.denseblock2.denselayer3.conv2.weight"])
    assert not any(k.startswith("mask_head") for k in sd)
    assert out["meta"]["source"] == published3["meta"]
    assert out["meta"]["variant"] == "alignshift"


def test_tsm_and_alignshift_told_apart_by_the_stored_config_text():
    tsm = fake_published_checkpoint(3, "tsm", mask_head=False, optimizer=False)
    assert convert_v1_checkpoint(tsm)[1].variant == "tsm"
    with pytest.raises(CheckpointLayoutError, match="config says tsm, but alignshift"):
        convert_v1_checkpoint(tsm, "alignshift")
    tsm["meta"] = {}
    with pytest.raises(CheckpointLayoutError, match="cannot tell AlignShift from TSM"):
        convert_v1_checkpoint(tsm)
    assert convert_v1_checkpoint(tsm, "tsm")[1].num_slices == 3


def test_non_matching_checkpoint_names_first_keys_and_shapes(published3):
    sd = dict(published3["state_dict"])
    sd["neck.lateral.weight"] = torch.zeros(3, 3)
    del sd["rpn_head.rpn_reg.bias"]
    sd["bbox_head.fc_cls.weight"] = torch.zeros(81, 2048)
    with pytest.raises(CheckpointLayoutError) as err:
        convert_v1_checkpoint({"meta": published3["meta"], "state_dict": sd})
    msg = str(err.value)
    assert "1 unexpected: neck.lateral.weight (3, 3)" in msg
    assert "1 missing: rpn_head.rpn_reg.bias (72,)" in msg
    assert "bbox_head.fc_cls.weight (81, 2048) (expected (2, 2048))" in msg
    with pytest.raises(CheckpointLayoutError, match="the checkpoint has 3 slices, but 7"):
        convert_v1_checkpoint(published3, "alignshift", 7)
    resnet = {"backbone.conv1.weight": torch.zeros(64, 3, 7, 7), "backbone.bn1.weight": torch.zeros(64)}
    with pytest.raises(CheckpointLayoutError, match=r"unexpected: backbone\.conv1\.weight \(64, 3, 7, 7\)"):
        convert_v1_checkpoint({"state_dict": resnet})


# ---------------------------------------------------------------- mmdet 1.x box conventions

def test_v1_anchors_hand_computed():
    a = v1_base_anchors(4, [4, 6, 8, 12, 24, 48], [0.5, 1.0, 2.0])
    assert a.shape == (18, 4)
    # ratio 1, scale 4: w = 16, corners 0 -+ 7.5 -> round half to even -> -8, 8
    assert a[6].tolist() == [-8, -8, 8, 8]
    # ratio 1, scale 6: w = 24, 11.5 -> 12
    assert a[7].tolist() == [-12, -12, 12, 12]
    # ratio 0.5, scale 4: w = 16 * sqrt(2) = 22.63 -> -10.81 -> -11; h = 16 / sqrt(2) = 11.31 -> -5.16 -> -5
    assert a[0].tolist() == [-11, -5, 11, 5]
    # ratio 2, scale 48: w = 192 / sqrt(2) = 135.76 -> 67.38 -> 67; h = 271.53 -> 135.26 -> 135
    assert a[17].tolist() == [-67, -135, 67, 135]
    grid = v1_grid_anchors(a, (2, 3), 4)
    assert grid.shape == (2 * 3 * 18, 4)
    assert grid[18 + 6].tolist() == [-4, -8, 12, 8]  # cell (y=0, x=1): shifted by 4 in x
    assert grid[3 * 18 + 6].tolist() == [-8, -4, 8, 12]  # cell (y=1, x=0)


def test_v1_delta2bbox_hand_computed():
    rois = torch.tensor([[10.0, 20.0, 29.0, 59.0]])  # 20 x 40 pixels in mmdet 1.x counting
    # zero deltas: the box itself (centre 19.5, 39.5; +-10 -> +0.5/-0.5)
    assert v1_delta2bbox(rois, torch.zeros(1, 4)).tolist() == [[10.0, 20.0, 29.0, 59.0]]
    # dx = 0.1 (std 0.1 -> 1.0 * 0.1 ... ) with stds: deltas * std
    d = torch.tensor([[1.0, -0.5, math.log(2) / 0.2, 0.0]])
    box = v1_delta2bbox(rois, d, stds=(0.1, 0.1, 0.2, 0.2))[0].tolist()
    # gx = 19.5 + 20 * 0.1 = 21.5; gw = 40; x1 = 21.5 - 20 + 0.5 = 2.0; x2 = 21.5 + 20 - 0.5 = 41.0
    # gy = 39.5 + 40 * -0.05 = 37.5; gh = 40; y1 = 18.0; y2 = 57.0
    assert box == pytest.approx([2.0, 18.0, 41.0, 57.0], abs=1e-4)
    clipped = v1_delta2bbox(rois, d, stds=(0.1, 0.1, 0.2, 0.2), max_shape=(50, 40))[0].tolist()
    assert clipped == pytest.approx([2.0, 18.0, 39.0, 49.0], abs=1e-4)  # W - 1, H - 1
    # the width ratio clip: |dw| <= log(1000 / 16)
    big = v1_delta2bbox(rois, torch.tensor([[0.0, 0.0, 100.0, 0.0]]))[0]
    assert (big[2] - big[0] + 1).item() == pytest.approx(20 * 1000 / 16, rel=1e-5)


# ---------------------------------------------------------------- the published operators and slices

def _published_alignshift(x, thickness, ref=2.0, n_fold=8):
    # M3DV/AlignShift nn/operators/alignshiftconv.py, shift_padding_zero=False (the default the
    # published backbones use): the edge slice of a shifted fold keeps its own value.
    fold = x.shape[1] // n_fold
    a = 1 - (ref / thickness).view(-1, 1, 1, 1, 1).clamp(0.0, 1.0)
    out = x.clone()
    out[:, :fold, :-1] = x[:, :fold, :-1] * a + x[:, :fold, 1:] * (1 - a)
    out[:, fold:2 * fold, 1:] = x[:, fold:2 * fold, 1:] * a + x[:, fold:2 * fold, :-1] * (1 - a)
    return out


def test_core_shifts_match_the_published_operators():
    x = torch.randn(2, 16, 5, 3, 3, dtype=torch.float64)
    t = torch.tensor([5.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(align_shift(x, t, ref_thickness=2.0, n_fold=8), _published_alignshift(x, t))
    fold = 2
    want = torch.zeros_like(x)  # published TSMConv.tsm: zero padding
    want[:, :fold, :-1] = x[:, :fold, 1:]
    want[:, fold:2 * fold, 1:] = x[:, fold:2 * fold, :-1]
    want[:, 2 * fold:] = x[:, 2 * fold:]
    torch.testing.assert_close(tsm_shift(x, n_fold=8), want)


def test_published_slice_plan():
    # AlignShift keeps native neighbours of thick series; TSM resamples them to 2 mm
    assert published_slice_plan(3, 5.0, variant="alignshift") == [[(-1, 1.0)], [(0, 1.0)], [(1, 1.0)]]
    assert published_slice_plan(3, 5.0, variant="tsm")[2] == [(1, pytest.approx(0.4)),
                                                               (0, pytest.approx(0.6))]
    # 1 mm: every second slice, no mixing, in both
    assert published_slice_plan(5, 1.0, variant="tsm") == [[(-4, 1.0)], [(-2, 1.0)], [(0, 1.0)], [(2, 1.0)],
                                                          [(4, 1.0)]]
    # 1.25 mm, 7 slices: the first neighbour's weights (0.6 / 0.4) are used for every neighbour
    plan = published_slice_plan(7, 1.25, variant="alignshift")
    assert [o for o, _ in plan[4]] == [2, 1] and [o for o, _ in plan[6]] == [5, 4]
    assert [w for _, w in plan[6]] == pytest.approx([0.6, 0.4])
    assert published_slice_plan(3, float("nan")) == [[(0, 1.0)]] * 3


def test_load_published_multislice_mixes_and_falls_back(tmp_path):
    series = tmp_path / "000001_01_01"
    series.mkdir()
    for i in (8, 9, 10, 11, 12):  # slice 13 is missing: offset +5 falls back to 12
        cv2.imwrite(str(series / f"{i:03d}.png"), np.full((4, 4), 32768 + 10 * i, np.uint16))
    hu = load_published_multislice(str(tmp_path), "000001_01_01/010.png", 1.25, 7, 2.0, "tsm")
    assert hu.shape == (4, 4, 7) and hu.dtype == np.float32
    # channel 4: 0.6 * slice 12 + 0.4 * slice 11 = 116; channel 6: slices 15 and 14 fall back to 12;
    # channel 1: slices 6 and 7 fall back to 8
    assert hu[0, 0].tolist() == pytest.approx([80, 80, 84, 100, 116, 120, 120], abs=1e-3)


def _published_tsm(x, n_fold=8):
    fold = x.shape[1] // n_fold
    out = torch.zeros_like(x)
    out[:, :fold, :-1] = x[:, :fold, 1:]
    out[:, fold:2 * fold, 1:] = x[:, fold:2 * fold, :-1]
    out[:, 2 * fold:] = x[:, 2 * fold:]
    return out


def _published_backbone(sd, x, thickness, variant):
    """The published DenseNetCustomTrunc3d{Align,TSM} forward (eval), written from its definition:
    x (B, 1, D, H, W) -> (B, 512, H/4, W/4)."""
    import torch.nn.functional as F

    def bn(t, p):
        return F.batch_norm(t, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                            sd[p + ".bias"], False, 0.0, 1e-5)

    def conv(t, p, shift, stride=1, pad=0):
        if shift:
            t = _published_alignshift(t, thickness) if variant == "alignshift" else _published_tsm(t)
        return F.conv3d(t, sd[p + ".weight"].unsqueeze(2), None, (1, stride, stride), (0, pad, pad))

    b = "backbone."
    t = F.relu(bn(conv(x, b + "conv0", False, 2, 3), b + "norm0"))
    t = F.max_pool3d(t, (1, 3, 3), (1, 2, 2), (0, 1, 1))
    reds = []
    for i, n in enumerate((6, 12, 24), 1):
        feats = [t]
        for j in range(1, n + 1):
            p = f"{b}denseblock{i}.denselayer{j}."
            h = conv(F.relu(bn(torch.cat(feats, 1), p + "norm1")), p + "conv1", True)
            feats.append(conv(F.relu(bn(h, p + "norm2")), p + "conv2", True, pad=1))
        t = torch.cat(feats, 1)
        reds.append(F.conv3d(t, sd[f"{b}reductionz{i}.reduction_z_conv.weight"]).squeeze(2))
        if i < 3:
            p = f"{b}transition{i}"
            t = F.avg_pool3d(conv(F.relu(bn(t, p + ".norm")), p + ".conv", False), (1, 2, 2), (1, 2, 2))
    out = F.conv2d(reds[2], sd[b + "lateral4.weight"], sd[b + "lateral4.bias"])
    for p, r in ((3, reds[1]), (2, reds[0])):
        out = F.interpolate(out, scale_factor=2, mode="nearest") + F.conv2d(
            r, sd[f"{b}lateral{p}.weight"], sd[f"{b}lateral{p}.bias"])
    return out


@pytest.mark.parametrize("variant", ["alignshift", "tsm"])
def test_converted_backbone_computes_the_published_features(variant, published3):
    from alignshift.models import DenseNetBackbone3D

    # AlignShift and TSM snapshots share the layout: one set of random weights serves both
    sd = {k: v.double() if v.is_floating_point() else v for k, v in published3["state_dict"].items()
          if k.startswith("backbone.")}
    converted, _ = convert_v1_checkpoint({"state_dict": published3["state_dict"]}, variant)
    net = DenseNetBackbone3D(variant, 3).double().eval()
    net.load_state_dict({k[len("backbone.net."):]: v for k, v in converted["state_dict"].items()
                         if k.startswith("backbone.net.")}, strict=True)
    x = torch.randn(2, 1, 3, 32, 32, dtype=torch.float64) * 50
    thickness = torch.tensor([5.0, 0.8], dtype=torch.float64)
    with torch.no_grad():
        want = _published_backbone(sd, x, thickness, variant)
        got = net(x, thickness)
    assert got.shape == (2, 512, 8, 8)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
