"""The metric's breakdown and bootstrap options, and flip test-time augmentation (DeepLesionTTAModel)."""

import copy
import json

import numpy as np
import pytest
import torch

SMALL = (48, 48)  # the synthetic images are 96 px: scale factor 0.5


def _pipeline(scale=SMALL):
    keys = ("img_id", "img_path", "file_name", "ori_shape", "img_shape", "scale_factor", "flip",
            "flip_direction", "thickness", "spacing", "patient")
    return [dict(type="LoadDeepLesionSlices"), dict(type="Resize", scale=scale, keep_ratio=True),
            dict(type="LoadAnnotations", with_bbox=True), dict(type="PackDetInputs", meta_keys=keys)]


def _dataset(root, pipeline, num_slices=3):
    from mmdet.registry import DATASETS

    return DATASETS.build(dict(type="DeepLesionDataset", data_root=str(root) + "/",
                               ann_file="annotations/deeplesion_test.json",
                               data_prefix=dict(img="Images_png/"), test_mode=True,
                               num_slices=num_slices, pipeline=pipeline))


def _ann(root):
    with open(root / "annotations" / "deeplesion_test.json") as f:
        return json.load(f)


def _samples(ds, boxes_of):
    """Data samples as the metric gets them, with predictions ``boxes_of(file_name)`` (N, 5)."""
    out = []
    for i in range(len(ds)):
        s = ds[i]["data_samples"]
        p = boxes_of(s.metainfo["file_name"])
        d = dict(s.metainfo)
        d["gt_instances"] = dict(bboxes=s.gt_instances.bboxes.tensor)
        d["pred_instances"] = dict(bboxes=torch.tensor(p[:, :4]), scores=torch.tensor(p[:, 4]))
        out.append(d)
    return out


def test_metric_ground_truth_is_in_original_pixels(prepared_root, mmdet_registered):
    """Annotations load after Resize: the boxes the metric gets are the annotation file's."""
    from mmdet_plugins.metrics import DeepLesionFROCMetric

    ann = _ann(prepared_root)
    by_name = {img["file_name"]: [a["bbox_xyxy"] for a in ann["annotations"] if a["image_id"] == img["id"]]
               for img in ann["images"]}
    ds = _dataset(prepared_root, _pipeline())
    assert ds[0]["data_samples"].metainfo["scale_factor"] == (0.5, 0.5)
    perfect = _samples(ds, lambda n: np.array([b + [0.9] for b in by_name[n]]).reshape(-1, 5))
    m = DeepLesionFROCMetric()
    m.dataset_meta = dict(classes=("lesion",))
    m.process({}, perfect)
    res = m.compute_metrics(m.results)
    assert res["all@0.5"] == 1.0 and res["all_avg"] == 1.0


def test_metric_breakdown_bootstrap_and_predictions_file(prepared_root, mmdet_registered, tmp_path):
    from alignshift.evaluation import evaluate_file
    from mmdet_plugins.metrics import DeepLesionFROCMetric

    ann_file = str(prepared_root / "annotations" / "deeplesion_test.json")
    ann = _ann(prepared_root)
    rng = np.random.default_rng(0)
    by_name = {}
    for img in ann["images"]:
        boxes = [a["bbox_xyxy"] for a in ann["annotations"] if a["image_id"] == img["id"]]
        dets = [b + [float(rng.uniform(0.2, 1))] for b in boxes if rng.random() < 0.7]
        dets += [[1.0, 1, 9, 9, float(rng.uniform(0, 0.5))]]
        by_name[img["file_name"]] = np.array(dets)
    samples = _samples(_dataset(prepared_root, _pipeline()), by_name.get)
    pred_file = tmp_path / "preds.json"
    m = DeepLesionFROCMetric(out_dir=str(tmp_path), prediction_file=str(pred_file), ann_file=ann_file,
                             breakdown="type,size,interval", bootstrap=50, seed=3)
    m.dataset_meta = dict(classes=("lesion",))
    m.process({}, samples)
    res = m.compute_metrics(m.results)
    assert any(k.startswith("interval:") for k in res)
    for ext in ("txt", "md", "json", "png"):
        assert (tmp_path / f"froc_breakdown.{ext}").exists()
    report = json.loads((tmp_path / "froc_breakdown.json").read_text())
    assert report["bootstrap"]["resamples"] == 50 and report["num_patients"] >= 1
    doc = json.loads(pred_file.read_text())
    rec = doc["images"][0]
    assert {"patient", "gt_lesion_type", "gt_diameters_mm", "gt_noisy"} <= set(rec)
    # the predictions file alone gives the same report (tools/eval_froc.py)
    again = evaluate_file(str(pred_file), breakdown="type,size,interval", n_resamples=50, seed=3)
    assert json.loads(again.to_json())["breakdowns"] == report["breakdowns"]
    assert json.loads(again.to_json())["subsets"] == report["subsets"]


def test_metric_options_fail_before_the_test_run(tmp_path, mmdet_registered):
    from alignshift.errors import UserError
    from mmdet_plugins.metrics import DeepLesionFROCMetric

    with pytest.raises(UserError, match="unknown breakdown 'organ'"):
        DeepLesionFROCMetric(breakdown="organ")
    with pytest.raises(UserError, match="avg must be one of"):
        DeepLesionFROCMetric(avg="0.1-8")
    with pytest.raises(UserError, match="annotation file .*nope.json does not exist"):
        DeepLesionFROCMetric(ann_file=str(tmp_path / "nope.json"))
    with pytest.raises(UserError, match="interval bin edges must be increasing"):
        DeepLesionFROCMetric(breakdown="interval", interval_bins=(3, 1))


def test_metric_bootstrap_without_patients_names_the_field(mmdet_registered):
    from alignshift.evaluation import PredictionsError
    from mmdet_plugins.metrics import DeepLesionFROCMetric

    m = DeepLesionFROCMetric(bootstrap=10)
    m.dataset_meta = dict(classes=("lesion",))
    box = torch.tensor([[10.0, 10, 20, 20]])
    m.process({}, [dict(pred_instances=dict(bboxes=box, scores=torch.tensor([0.9])),
                        gt_instances=dict(bboxes=box), thickness=1.0, file_name="a/1.png")])
    with pytest.raises(PredictionsError, match=r"images\[0\] \(a/1.png\) has no field 'patient', "
                                               "which the patient bootstrap needs"):
        m.compute_metrics(m.results)


# --- flip test-time augmentation -------------------------------------------------------------

def _toy_detector(offset=0):
    """A tiny ThicknessAwareFasterRCNN whose features scale with the thickness."""
    from mmdet.registry import MODELS
    from mmengine.model import BaseModule

    @MODELS.register_module(force=True)
    class ToyThicknessBackbone(BaseModule):
        def __init__(self, in_channels=3, channels=32):
            super().__init__()
            self.conv = torch.nn.Conv2d(in_channels, channels, 3, padding=1)

        def forward(self, x, thickness=None):
            f = torch.nn.functional.avg_pool2d(torch.relu(self.conv(x)), 32)
            if thickness is not None:
                f = f * (1 + thickness.to(f)[:, None, None, None] / 4)
            return (f,)

    c = 32
    cfg = dict(
        type="ThicknessAwareFasterRCNN",
        data_preprocessor=dict(type="DetDataPreprocessor", mean=[0.0] * 3, std=[255.0] * 3,
                               bgr_to_rgb=False, pad_size_divisor=32),
        backbone=dict(type="ToyThicknessBackbone"),
        rpn_head=dict(type="RPNHead", in_channels=c, feat_channels=c,
                      anchor_generator=dict(type="AnchorGenerator", scales=[0.5, 1, 2],
                                            ratios=[0.5, 1.0, 2.0], strides=[32]),
                      bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4,
                                      target_stds=[1.0] * 4)),
        roi_head=dict(type="StandardRoIHead",
                      bbox_roi_extractor=dict(type="SingleRoIExtractor",
                                              roi_layer=dict(type="RoIAlign", output_size=7,
                                                             sampling_ratio=0),
                                              out_channels=c, featmap_strides=[32]),
                      bbox_head=dict(type="Shared2FCBBoxHead", in_channels=c, fc_out_channels=32,
                                     roi_feat_size=7, num_classes=1,
                                     bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4,
                                                     target_stds=[0.1, 0.1, 0.2, 0.2]),
                                     reg_class_agnostic=False)),
        train_cfg=None,
        test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=50, nms=dict(type="nms", iou_threshold=0.7),
                               min_bbox_size=0),
                      rcnn=dict(score_thr=0.0, nms=dict(type="nms", iou_threshold=0.5, offset=offset),
                                max_per_img=30)))
    from mmengine.config import ConfigDict

    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(cfg))
    model.init_weights()
    with torch.no_grad():  # spread the scores: an untrained head ties many of them
        model.roi_head.bbox_head.fc_cls.weight.normal_(0, 1)
        model.roi_head.bbox_head.fc_reg.weight.normal_(0, 0.1)
    return model.eval()


def _tta_batch(root, idx=(0, 1)):
    from mmengine.dataset import pseudo_collate

    from mmdet_plugins.tta import flip_tta_pipeline

    ds = _dataset(root, flip_tta_pipeline(_pipeline(scale=(64, 64))))
    return pseudo_collate([ds[i] for i in idx]), ds


def _canonical(dets):
    """Rows by score, then corners: equal scores may come out of an NMS in either order."""
    d = np.round(dets, 3)
    return dets[np.lexsort((d[:, 3], d[:, 2], d[:, 1], d[:, 0], -d[:, 4]))]


def _dets(sample):
    p = sample.pred_instances
    return np.hstack([p.bboxes.numpy(), p.scores.numpy()[:, None]])


@pytest.mark.parametrize("offset", [0, 1])
def test_tta_model_merges_both_views_with_the_detector_nms(offset, prepared_root, mmdet_registered):
    from alignshift.inference.tta import merge_flipped
    from mmdet_plugins.tta import DeepLesionTTAModel

    model = _toy_detector(offset)
    tta = DeepLesionTTAModel(module=model)
    assert tta.tta_cfg.nms.offset == offset and tta.tta_cfg.max_per_img == 30
    data, ds = _tta_batch(prepared_root)
    assert [s.metainfo["flip"] for s in (data["data_samples"][0][0], data["data_samples"][1][0])] == \
        [False, True]
    with torch.no_grad():
        merged = tta.test_step(copy.deepcopy(data))
        views = [model.test_step(dict(inputs=data["inputs"][v], data_samples=data["data_samples"][v]))
                 for v in (0, 1)]
    ann = _ann(prepared_root)
    for i, out in enumerate(merged):
        assert out.metainfo["flip"] is False  # the original view carries the result
        width = out.metainfo["ori_shape"][1]
        want = merge_flipped([_dets(views[0][i]), _dets(views[1][i])], [False, True], width,
                             0.5, 30, offset)
        got = _dets(out)
        assert len(got) == len(want) > 0
        np.testing.assert_allclose(_canonical(got), _canonical(want), rtol=0, atol=1e-3)
        # ground truth in the original orientation and pixels
        img = next(im for im in ann["images"] if im["file_name"] == out.metainfo["file_name"])
        gt = [a["bbox_xyxy"] for a in ann["annotations"] if a["image_id"] == img["id"]]
        b = out.gt_instances.bboxes
        np.testing.assert_allclose(getattr(b, "tensor", b).numpy(), gt, atol=1e-3)


def test_thickness_travels_through_the_tta_wrapper(prepared_root, mmdet_registered):
    from mmdet_plugins.tta import DeepLesionTTAModel

    tta = DeepLesionTTAModel(module=_toy_detector())
    data, _ = _tta_batch(prepared_root, (0,))
    other = copy.deepcopy(data)
    for views in other["data_samples"]:
        views[0].set_metainfo(dict(thickness=views[0].metainfo["thickness"] + 3.0))
    with torch.no_grad():
        a = _dets(tta.test_step(copy.deepcopy(data))[0])
        b = _dets(tta.test_step(other)[0])
    assert a.shape != b.shape or not np.allclose(a, b)
    bad = copy.deepcopy(data)
    bad["data_samples"][1][0].set_metainfo(dict(thickness=9.0))
    with pytest.raises(KeyError, match="test-time views carry thickness"):
        tta.test_step(bad)


def test_core_merge_equals_det_tta_merge_on_random_boxes(mmdet_registered):
    """alignshift.inference.tta.merge_flipped (volume inference) is DetTTAModel's merge."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from alignshift.inference.tta import merge_flipped
    from mmdet_plugins.tta import DeepLesionTTAModel

    rng = np.random.default_rng(0)
    for offset in (0, 1):
        tta = DeepLesionTTAModel(module=_toy_detector(offset))
        for _ in range(5):
            views, dets = [], []
            for flip in (False, True):
                xy = rng.uniform(0, 80, (40, 2))
                d = np.hstack([xy, xy + rng.uniform(2, 30, (40, 2)), rng.random((40, 1))])
                s = DetDataSample(metainfo=dict(ori_shape=(96, 120), flip=flip,
                                                flip_direction="horizontal" if flip else None))
                s.pred_instances = InstanceData(bboxes=torch.tensor(d[:, :4], dtype=torch.float32),
                                                scores=torch.tensor(d[:, 4], dtype=torch.float32),
                                                labels=torch.zeros(40, dtype=torch.long))
                views.append(s)
                dets.append(d.astype(np.float32))
            got = _dets(tta._merge_single_sample(views[::-1]))  # any view order
            want = merge_flipped(dets, [False, True], 120, 0.5, 30, offset)
            np.testing.assert_allclose(got, want, atol=1e-4)


def test_flip_tta_for_volume_inference(mmdet_registered):
    from mmdet_plugins.tta import flip_tta_detector

    calls = []

    def detector(images, thickness):
        calls.append((images.copy(), thickness.copy()))
        # one box near the left edge of whatever it sees
        return [np.array([[2.0, 5, 12, 15, 0.9]]) for _ in images]

    wrapped = flip_tta_detector(detector, dict(rcnn=dict(nms=dict(type="nms", iou_threshold=0.5),
                                                         max_per_img=5)))
    imgs = np.random.default_rng(0).random((2, 3, 20, 40)).astype(np.float32)
    out = wrapped(imgs, np.array([1.0, 5.0]))
    np.testing.assert_array_equal(calls[1][0], imgs[..., ::-1])
    np.testing.assert_array_equal(calls[1][1], [1.0, 5.0])  # the same thickness for the mirror
    # the mirrored view's box comes back on the right edge: both survive the NMS
    np.testing.assert_allclose(sorted(out[0][:, 0].tolist()), [2.0, 28.0])


def test_tta_configs(prepared_root, mmdet_registered):
    from mmengine.config import Config

    from mmdet_plugins.tta import enable_flip_tta

    base = Config.fromfile("configs/_base_/tta.py")
    assert base.tta_model.type == "DeepLesionTTAModel"
    ds = _dataset(prepared_root, base.tta_pipeline)
    sample = ds[0]
    assert [s.metainfo["flip"] for s in sample["data_samples"]] == [False, True]
    assert all("thickness" in s.metainfo for s in sample["data_samples"])
    cfg = Config.fromfile("configs/demo/alignshift_3slice_synthetic.py")
    model = copy.deepcopy(cfg.model)
    enable_flip_tta(cfg)
    assert cfg.model.type == "DeepLesionTTAModel" and cfg.model.module == model
    tta_step = cfg.test_dataloader.dataset.pipeline[-1]
    assert tta_step["type"] == "TestTimeAug"
    assert tta_step["transforms"][0][0]["scale"] == (128, 128)  # the config's own img_scale


def test_metric_with_ann_file_evaluates_the_tested_images_only(prepared_root, mmdet_registered, tmp_path):
    """A test run over part of the split (dataset indices) is not diluted by the other images."""
    from mmdet_plugins.metrics import DeepLesionFROCMetric

    ann_file = str(prepared_root / "annotations" / "deeplesion_test.json")
    samples = _samples(_dataset(prepared_root, _pipeline()), lambda n: np.zeros((0, 5)))[:3]
    m = DeepLesionFROCMetric(out_dir=str(tmp_path), ann_file=ann_file, breakdown="interval")
    m.dataset_meta = dict(classes=("lesion",))
    m.process({}, samples)
    m.compute_metrics(m.results)
    report = json.loads((tmp_path / "froc_breakdown.json").read_text())
    assert report["num_images"] == 3
    assert json.loads((tmp_path / "froc.json").read_text())["all"]["num_images"] == 3
