"""The converted published snapshots under MMDetection 3: official configs, legacy conventions, tools."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

import pytest
import torch

from alignshift.apps.cli import run_cli
from alignshift.apps.zoo import convert_v1_checkpoint, load_index
from alignshift.apps.zoo.testing import fake_published_checkpoint
from alignshift.boxes import v1_base_anchors, v1_grid_anchors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OFFICIAL = os.path.join(ROOT, "configs", "deeplesion", "official")


def _cfg(name):
    from mmengine.config import Config

    return Config.fromfile(os.path.join(OFFICIAL, f"{name}.py"), import_custom_modules=False)


@pytest.fixture(scope="module")
def published3():
    return fake_published_checkpoint(3, "alignshift", seed=5)


@pytest.mark.parametrize("entry", load_index(), ids=lambda e: e.name)
def test_official_configs_set_the_mmdet1_conventions(entry):
    cfg = _cfg(entry.name)
    m = cfg.model
    assert (m.backbone.conv, m.backbone.num_slices, m.backbone.pretrained) == (entry.conv, entry.slices, None)
    assert (m.data_preprocessor.mean, m.data_preprocessor.std) == ([50.0], [1.0])
    ag = m.rpn_head.anchor_generator
    assert (ag.type, ag.strides, ag.base_sizes, ag.scales, ag.ratios) == (
        "V1AnchorGenerator", [4], [4], [4, 6, 8, 12, 24, 48], [0.5, 1.0, 2.0])
    assert m.rpn_head.bbox_coder.type == m.roi_head.bbox_head.bbox_coder.type == "V1DeltaXYWHBBoxCoder"
    assert m.roi_head.bbox_head.bbox_coder.target_stds == [0.1, 0.1, 0.2, 0.2]
    assert m.roi_head.bbox_head.reg_class_agnostic is False
    layer = m.roi_head.bbox_roi_extractor.roi_layer
    assert (m.roi_head.bbox_roi_extractor.type, layer.aligned, layer.sampling_ratio) == (
        "V1SingleRoIExtractor", False, 2)
    assert m.test_cfg.rpn.nms.offset == m.test_cfg.rcnn.nms.offset == 1
    rpn = m.test_cfg.rpn
    assert (rpn.nms_pre, rpn.max_per_img, rpn.min_bbox_size) == (6000, 300, -1)
    assert m.test_cfg.rcnn.score_thr == {"alignshift": 0.001, "tsm": 5e-5}[entry.conv]  # published
    ds = cfg.test_dataloader.dataset
    assert ds.num_slices == entry.slices
    assert ds.pipeline[0] == dict(type="LoadDeepLesionSlicesV1", variant=entry.conv)
    assert cfg.test_evaluator.type == "DeepLesionFROCMetric"
    assert cfg.test_evaluator.paper_variant == entry.paper_variant


def _predict(model, num_slices, size=64):
    from mmdet.structures import DetDataSample

    meta = dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0), thickness=5.0)
    data = dict(inputs=[torch.rand(num_slices, size, size) * 255],
                data_samples=[DetDataSample(metainfo=meta)])
    with torch.no_grad():
        return model.test_step(data)[0].pred_instances


def test_converted_fixture_loads_strictly_and_predicts(mmdet_registered, published3):
    from mmdet.registry import MODELS

    model = MODELS.build(_cfg("alignshift_3slice").model).eval()
    converted, _ = convert_v1_checkpoint(published3)
    model.load_state_dict(converted["state_dict"], strict=True)
    pred = _predict(model, 3)
    assert 0 < len(pred.bboxes) <= 50
    assert torch.isfinite(pred.bboxes).all() and ((pred.scores > 0) & (pred.scores <= 1)).all()
    assert (pred.bboxes[:, 2:] <= 63).all() and (pred.bboxes >= 0).all()  # clipped to W - 1, H - 1


def test_tsm_7slice_fixture_loads_strictly(mmdet_registered):
    from mmdet.registry import MODELS

    model = MODELS.build(_cfg("tsm_7slice").model)
    converted, report = convert_v1_checkpoint(fake_published_checkpoint(7, "tsm", mask_head=False))
    assert (report.variant, report.num_slices) == ("tsm", 7)
    model.load_state_dict(converted["state_dict"], strict=True)


def test_v1_anchor_generator_gives_the_published_anchors(mmdet_registered):
    from mmdet.registry import TASK_UTILS

    gen = TASK_UTILS.build(dict(type="V1AnchorGenerator", strides=[4], base_sizes=[4],
                                scales=[4, 6, 8, 12, 24, 48], ratios=[0.5, 1.0, 2.0]))
    grid = gen.grid_priors([(2, 3)], device="cpu")[0]
    base = v1_base_anchors(4, [4, 6, 8, 12, 24, 48], [0.5, 1.0, 2.0])
    assert torch.equal(grid, v1_grid_anchors(base, (2, 3), 4))
    assert grid[0].tolist() == [-11, -5, 11, 5]  # cell (0, 0), ratio 0.5, scale 4 (hand-computed)
    assert grid[18 + 6].tolist() == [-4, -8, 12, 8]  # cell (0, 1), ratio 1, scale 4
    assert gen.num_base_priors == [18]


def test_v1_coder_adds_the_half_pixel_and_inverts_the_legacy_encoder(mmdet_registered):
    from mmdet.registry import TASK_UTILS

    kw = dict(target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2])
    v1 = TASK_UTILS.build(dict(type="V1DeltaXYWHBBoxCoder", **kw))
    legacy = TASK_UTILS.build(dict(type="LegacyDeltaXYWHBBoxCoder", **kw))
    rois = torch.tensor([[10.0, 20.0, 29.0, 59.0]])
    d = torch.tensor([[1.0, -0.5, 0.6931471805599453 / 0.2, 0.0]])
    assert v1.decode(rois, d)[0].tolist() == pytest.approx([2.0, 18.0, 41.0, 57.0], abs=1e-4)
    assert legacy.decode(rois, d)[0].tolist() == pytest.approx([1.5, 17.5, 41.5, 57.5], abs=1e-4)
    gt = torch.tensor([[3.0, 5.0, 40.0, 30.0], [100.0, 90.0, 180.0, 95.0]])
    anchors = torch.tensor([[0.0, 0.0, 31.0, 31.0], [96.0, 80.0, 191.0, 111.0]])
    torch.testing.assert_close(v1.decode(anchors, v1.encode(anchors, gt)), gt)


def test_v1_roi_extractor_pools_to_x2_plus_one(mmdet_registered):
    from mmdet.registry import MODELS

    def build(kind):
        layer = dict(type="RoIAlign", output_size=1, sampling_ratio=2, aligned=False)
        return MODELS.build(dict(type=kind, out_channels=1, featmap_strides=[1], roi_layer=layer))

    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8).contiguous()  # value = x
    rois = torch.tensor([[0.0, 0.0, 0.0, 3.0, 3.0]])
    # mmdet 1.x pools [0, 4): samples at x = 1 and 3 -> 2.0; mmcv alone pools [0, 3): 0.75, 2.25 -> 1.5
    assert build("V1SingleRoIExtractor")((ramp,), rois).item() == pytest.approx(2.0)
    assert build("SingleRoIExtractor")((ramp,), rois).item() == pytest.approx(1.5)


def test_metric_logs_paper_vs_measured(mmdet_registered):
    import numpy as np
    from mmengine.logging import MMLogger

    from mmdet_plugins.metrics import DeepLesionFROCMetric

    with pytest.raises(KeyError, match="no published figures for 'resnet'"):
        DeepLesionFROCMetric(paper_variant="resnet")
    metric = DeepLesionFROCMetric(paper_variant="alignshift_3slice")
    results = [dict(img_id=i, file_name=f"{i}.png", thickness=t, gt_boxes=[[10, 10, 20, 20]],
                    pred_boxes=[[10, 10, 20, 20, 0.9], [50, 50, 60, 60, 0.5]])
               for i, t in enumerate([1.0, 5.0])]
    logger = MMLogger.get_current_instance()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        metrics = metric.compute_metrics(results)
    finally:
        logger.removeHandler(handler)
    assert np.isclose(metrics["all@4"], 1.0)
    text = stream.getvalue()
    assert "Paper (AlignShift, 3 slices) vs measured" in text and "72.90" in text and "100.00" in text


def test_convert_tool_checks_against_the_config_and_reports(tmp_path, published3, capsys):
    from alignshift.apps.convert_official_checkpoint import main

    src, out = tmp_path / "published.pth", tmp_path / "converted.pth"
    torch.save(published3, src)
    argv = [str(src), str(out), "--config", os.path.join(OFFICIAL, "alignshift_3slice.py")]
    assert run_cli(main, argv, prog="convert") == 0
    stdout = capsys.readouterr().out
    assert "loads with strict=True" in stdout and "dropped the mask head" in stdout
    assert "background row moved last" in stdout
    assert "not carried over from the checkpoint file: optimizer" in stdout
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["meta"]["source"]["config"] == published3["meta"]["config"]
    # a 3-slice snapshot against the 7-slice config, and a checkpoint of another kind
    assert run_cli(main, [str(src), str(tmp_path / "x.pth"), "--config",
                          os.path.join(OFFICIAL, "alignshift_7slice.py")], prog="convert") == 1
    assert "has 3 slices, but 7" in capsys.readouterr().err
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(64, 3, 7, 7)}}, tmp_path / "r.pth")
    assert run_cli(main, [str(tmp_path / "r.pth"), str(tmp_path / "y.pth"), "--variant", "tsm"],
                   prog="convert") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected: backbone.conv1.weight (64, 3, 7, 7)" in err
    assert "missing: backbone.conv0.weight (64, 1, 7, 7)" in err
    assert not (tmp_path / "x.pth").exists() and not (tmp_path / "y.pth").exists()


@pytest.mark.e2e
def test_tools_test_prints_froc_and_paper_comparison(prepared_root, tmp_path, published3):
    """The documented command, ``tools/test.py configs/deeplesion/official/X.py checkpoints/X.pth``,
    on the synthetic release (2 images at their 96-pixel size) with a converted fixture."""
    ckpt = tmp_path / "alignshift_3slice.pth"
    torch.save(convert_v1_checkpoint(published3)[0], ckpt)
    env = dict(os.environ, DEEPLESION_ROOT=str(prepared_root) + "/", PYTHONUNBUFFERED="1")
    p = subprocess.run(
        [sys.executable, "tools/test.py", "configs/deeplesion/official/alignshift_3slice.py", str(ckpt),
         "--work-dir", str(tmp_path / "work"), "--cfg-options", "test_dataloader.dataset.indices=2",
         "test_dataloader.num_workers=0", "test_dataloader.persistent_workers=False",
         "test_dataloader.dataset.pipeline.1.scale=(96,96)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-3000:]
    assert "DeepLesion FROC" in log and "Paper (AlignShift, 3 slices) vs measured" in log
    assert "83.18" in log  # the paper's Avg. for this model, from paper_results.json
