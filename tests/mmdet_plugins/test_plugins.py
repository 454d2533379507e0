import copy
import glob
import json
import os

import numpy as np
import pytest
import torch

CONFIGS = sorted(glob.glob("configs/deeplesion/*.py"))
SMALL = (96, 96)


def small_pipeline(pipeline):
    pipeline = copy.deepcopy(pipeline)
    for t in pipeline:
        if t["type"] == "Resize":
            t["scale"] = SMALL
    return pipeline


def build(cfg_path, root, split="train"):
    from mmdet.registry import DATASETS, MODELS
    from mmengine.config import Config

    cfg = Config.fromfile(cfg_path)
    cfg.model.backbone.pretrained = None  # no download in tests
    loader = cfg[f"{split}_dataloader"]
    ds_cfg = copy.deepcopy(loader.dataset)
    ds_cfg.update(data_root=str(root) + "/", pipeline=small_pipeline(ds_cfg.pipeline))
    torch.manual_seed(0)
    return cfg, MODELS.build(cfg.model), DATASETS.build(ds_cfg)


def batch(ds, idx=(0, 1)):
    from mmengine.dataset import pseudo_collate

    return pseudo_collate([ds[i] for i in idx])


def test_paper_configs_exist():
    names = {os.path.basename(c) for c in CONFIGS}
    for kind in ("2.5d_3slice", "2.5d_7slice", "tsm_3slice", "tsm_7slice", "alignshift_3slice",
                 "alignshift_7slice", "a3d_7slice"):
        assert f"fasterrcnn_densenet_{kind}.py" in names


@pytest.mark.e2e
@pytest.mark.parametrize("cfg_path", CONFIGS, ids=os.path.basename)
def test_config_trains_one_iteration_and_predicts(cfg_path, prepared_root, mmdet_registered):
    cfg, model, ds = build(cfg_path, prepared_root)
    n = cfg.num_slices
    assert ds.num_slices == n and ds.interpolate == ("alignshift" not in cfg_path)
    model.init_weights()
    data = batch(ds)
    assert data["inputs"][0].shape[0] == n
    assert all("thickness" in s.metainfo for s in data["data_samples"])
    model.train()
    data_p = model.data_preprocessor(data, training=True)
    losses = model(**data_p, mode="loss")
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    model.eval()
    test_ds = build(cfg_path, prepared_root, "test")[2]
    with torch.no_grad():
        preds = model.test_step(batch(test_ds))
    assert len(preds) == 2
    for p in preds:
        assert p.pred_instances.bboxes.shape[1] == 4
        assert len(p.pred_instances) <= 50  # at most 50 detections per image


@pytest.mark.parametrize("conv, should_differ", [("alignshift", True), ("tsm", False)])
def test_thickness_reaches_the_backbone(conv, should_differ, prepared_root, mmdet_registered):
    cfg_path = f"configs/deeplesion/fasterrcnn_densenet_{conv}_3slice.py"
    _, model, ds = build(cfg_path, prepared_root, "test")
    model.init_weights()
    model.eval()
    data = batch(ds, (0,))
    other = copy.deepcopy(data)
    t = data["data_samples"][0].metainfo["thickness"]
    other["data_samples"][0].set_metainfo(dict(thickness=5.0 if t <= 2 else 1.0))
    with torch.no_grad():
        a = model.test_step(data)[0].pred_instances
        b = model.test_step(other)[0].pred_instances
        fa = model._run_forward(model.data_preprocessor(data), mode="tensor")
        fb = model._run_forward(model.data_preprocessor(other), mode="tensor")
    same_feats = all(torch.equal(x, y) for x, y in zip(fa[-1], fb[-1]))
    same_preds = len(a) == len(b) and torch.equal(a.scores, b.scores)
    assert same_feats != should_differ
    assert same_preds != should_differ


def test_missing_thickness_metainfo_is_named(prepared_root, mmdet_registered):
    _, model, ds = build("configs/deeplesion/fasterrcnn_densenet_alignshift_3slice.py",
                         prepared_root, "test")
    data = batch(ds, (0,))
    data["data_samples"][0] = data["data_samples"][0].__class__(
        metainfo={k: v for k, v in data["data_samples"][0].metainfo.items() if k != "thickness"})
    with pytest.raises(KeyError, match="thickness"):
        model.eval()
        model.test_step(data)


def test_dataset_records(prepared_root, mmdet_registered):
    _, _, ds = build("configs/deeplesion/fasterrcnn_densenet_alignshift_7slice.py", prepared_root)
    with open(prepared_root / "annotations" / "deeplesion_train.json") as f:
        ann = json.load(f)
    assert len(ds) == len(ann["images"])
    info = ds.get_data_info(0)
    img = ann["images"][0]
    assert info["thickness"] == img["thickness"] and info["img_path"].endswith(img["file_name"])
    boxes = [a["bbox_xyxy"] for a in ann["annotations"] if a["image_id"] == img["id"]]
    assert [i["bbox"] for i in info["instances"]] == boxes
    sample = ds[0]
    assert sample["inputs"].shape[0] == 7 and sample["inputs"].dtype == torch.float32
    assert sample["data_samples"].metainfo["spacing"] == img["spacing"]


def test_load_transform_windowing(prepared_root, mmdet_registered):
    from alignshift.data import load_multislice, window
    from mmdet_plugins.transforms import LoadDeepLesionSlices

    with open(prepared_root / "annotations" / "deeplesion_test.json") as f:
        img = json.load(f)["images"][0]
    res = LoadDeepLesionSlices(num_slices=3, window=(-175, 275))(dict(
        img_path=str(prepared_root / "Images_png" / img["file_name"]), thickness=img["thickness"]))
    want = window(load_multislice(str(prepared_root / "Images_png"), img["file_name"],
                                  img["thickness"], 3), (-175, 275))
    np.testing.assert_array_equal(res["img"], want)
    assert res["img_shape"] == want.shape[:2]


def test_shift_scale_rotate_moves_boxes_with_the_image():
    from mmdet.structures.bbox import HorizontalBoxes

    from mmdet_plugins.transforms import RandomShiftScaleRotate

    img = np.zeros((64, 64, 5), np.float32)
    img[20:30, 10:20] = 255.0
    boxes = HorizontalBoxes(torch.tensor([[10.0, 20.0, 20.0, 30.0]]))
    np.random.seed(0)
    t = RandomShiftScaleRotate(shift_limit=0.1, scale_limit=0.0, rotate_limit=0.0, prob=1.0)
    out = t(dict(img=img.copy(), gt_bboxes=boxes))
    (x1, y1, x2, y2), = out["gt_bboxes"].numpy()
    ys, xs = np.nonzero(out["img"][..., 4] > 127)
    assert abs(xs.min() - x1) <= 1 and abs(ys.min() - y1) <= 1
    assert abs(x2 - x1 - 10) < 1e-3 and out["img"].shape == img.shape
    # a rotation makes the box the hull of the rotated corners: never smaller
    t = RandomShiftScaleRotate(shift_limit=0.0, scale_limit=0.0, rotate_limit=30, prob=1.0)
    out = t(dict(img=img.copy(), gt_bboxes=boxes))
    (x1, y1, x2, y2), = out["gt_bboxes"].numpy()
    assert x2 - x1 >= 10 - 1e-3 and 0 <= x1 and x2 <= 64


def test_metric_matches_core_froc(tmp_path, mmdet_registered):
    from alignshift.evaluation import froc_breakdown
    from mmdet_plugins.metrics import DeepLesionFROCMetric

    rng = np.random.default_rng(0)
    samples, preds, gts, thick = [], [], [], []
    for i in range(12):
        gt = np.array([[10.0, 10, 30, 30]]) + i
        pred = np.hstack([gt + rng.normal(0, 3, (1, 4)), [[rng.random()]]])
        pred = np.vstack([pred, [[50, 50, 60, 60, rng.random()]]])
        t = [1.0, 5.0][i % 2]
        # the test pipelines load annotations after Resize: ground truth and predictions both
        # come in original pixels, whatever the scale factor (x2 here)
        samples.append(dict(
            pred_instances=dict(bboxes=torch.tensor(pred[:, :4]), scores=torch.tensor(pred[:, 4])),
            gt_instances=dict(bboxes=torch.tensor(gt)), scale_factor=(2.0, 2.0),
            thickness=t, img_id=i, file_name=f"s/{i}.png"))
        preds.append(pred), gts.append(gt), thick.append(t)
    m = DeepLesionFROCMetric(out_dir=str(tmp_path), prediction_file=str(tmp_path / "p.json"))
    m.dataset_meta = dict(classes=("lesion",))
    m.process({}, samples)
    res = m.compute_metrics(m.results)
    want = froc_breakdown(preds, gts, thick)
    for subset in ("all", "thin", "thick"):
        assert res[f"{subset}_avg"] == pytest.approx(want[subset]["avg"], abs=1e-6)
    for f in ("froc.png", "froc_table.txt", "froc.json", "p.json"):
        assert (tmp_path / f).exists()


PUBLISHED_SCORE_THR = {"2.5d": 0.005, "tsm": 5e-5, "a3d": 5e-5, "alignshift": 0.001}


@pytest.mark.parametrize("cfg_path", CONFIGS, ids=os.path.basename)
def test_paper_configs_follow_the_published_recipe(cfg_path):
    """The settings docs/deeplesion.md's audit lists as published (M3DV/AlignShift mconfigs)."""
    from mmengine.config import Config

    cfg = Config.fromfile(cfg_path)
    m, kind = cfg.model, os.path.basename(cfg_path).split("_")[2]
    assert (m.backbone.first_conv_init, m.backbone.neck_init) == ("center", "published")
    assert m.rpn_head.anchor_generator.type == "V1AnchorGenerator"
    assert m.rpn_head.bbox_coder.type == m.roi_head.bbox_head.bbox_coder.type == "V1DeltaXYWHBBoxCoder"
    assert m.roi_head.bbox_roi_extractor.type == "V1SingleRoIExtractor"
    assert m.roi_head.bbox_roi_extractor.roi_layer.aligned is False
    assert m.roi_head.bbox_head.reg_class_agnostic is False
    prop, rpn = m.train_cfg.rpn_proposal, m.test_cfg.rpn
    assert (prop.nms_pre, prop.max_per_img, rpn.nms_pre, rpn.max_per_img) == (12000, 2000, 6000, 300)
    assert prop.nms.offset == rpn.nms.offset == m.test_cfg.rcnn.nms.offset == 1
    assert m.test_cfg.rcnn.score_thr == PUBLISHED_SCORE_THR[kind]
    assert cfg.param_scheduler[0].start_factor == pytest.approx(0.01)
    aug, = [t for t in cfg.train_pipeline if t["type"] == "RandomShiftScaleRotate"]
    assert (aug["shift_limit"], aug["scale_limit"], aug["rotate_limit"], aug["prob"]) == (0.04, 0.2, 15, 0.8)
    assert (aug["interpolation"], aug["border"]) == ("bicubic", "reflect_101")
    assert cfg.get("sync_bn") == (None if kind == "2.5d" else "torch")
    assert cfg.train_dataloader.batch_size == {"2.5d": 16, "a3d": 1}.get(kind, 2)  # images per GPU
    assert cfg.auto_scale_lr.base_batch_size == 4 * cfg.train_dataloader.batch_size  # on 4 GPUs


@pytest.mark.parametrize("variant", ["2.5d_3slice", "2.5d_7slice", "tsm_3slice", "tsm_7slice",
                                     "alignshift_3slice", "alignshift_7slice", "a3d_7slice", "demo"])
def test_benchmark_configs_keep_the_conventions_they_were_measured_with(variant):
    from mmengine.config import Config

    from alignshift.apps.reproduce.configs import OVERLAY, load_run_config, paper_config

    if variant == "demo":
        m = Config.fromfile("configs/demo/alignshift_3slice_synthetic.py").model
    else:  # the benchmark overlay on the paper config, as tools/reproduce.py applies it
        m = load_run_config(paper_config(variant), OVERLAY).model
    assert m.backbone.neck_init == "default"
    assert m.rpn_head.anchor_generator.type == "AnchorGenerator"
    assert m.rpn_head.bbox_coder.type == m.roi_head.bbox_head.bbox_coder.type == "DeltaXYWHBBoxCoder"
    assert m.roi_head.bbox_roi_extractor.type == "SingleRoIExtractor"
    assert m.roi_head.bbox_roi_extractor.roi_layer.aligned is True
    assert m.train_cfg.rpn_proposal.nms.offset == m.test_cfg.rpn.nms.offset == 0
    assert m.test_cfg.rcnn.score_thr == 0.001


def test_shift_scale_rotate_published_resampling():
    from mmdet_plugins.transforms import RandomShiftScaleRotate

    img = np.full((32, 32, 3), 100.0, np.float32)
    np.random.seed(0)
    t = RandomShiftScaleRotate(shift_limit=0.0, scale_limit=0.0, rotate_limit=45, prob=1.0,
                               interpolation="bicubic", border="reflect_101")
    out = t(dict(img=img.copy()))["img"]
    np.testing.assert_allclose(out, 100.0, atol=1e-3)  # reflected, not zero-filled, corners
    zero = RandomShiftScaleRotate(shift_limit=0.0, scale_limit=0.0, rotate_limit=45, prob=1.0)
    np.random.seed(0)
    assert zero(dict(img=img.copy()))["img"][0, 0, 0] == 0.0
    with pytest.raises(ValueError, match="interpolation"):
        RandomShiftScaleRotate(interpolation="nearest")
    with pytest.raises(ValueError, match="border"):
        RandomShiftScaleRotate(border="wrap")
