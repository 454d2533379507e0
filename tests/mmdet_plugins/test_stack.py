"""The stack works here: mmcv's compiled ops, mmdet's Faster R-CNN on CPU, checkpoint resume."""

import torch


def test_mmcv_compiled_ops():
    import mmdet.models  # noqa: F401  (loads mmcv._ext)
    from mmcv.ops import RoIAlign, batched_nms, nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, 0.5)
    assert keep.tolist() == [0, 2]
    _, keep = batched_nms(boxes, scores, torch.tensor([0, 1, 0]), dict(type="nms", iou_threshold=0.5))
    assert sorted(keep.tolist()) == [0, 1, 2]
    feat = torch.arange(16.0).view(1, 1, 4, 4)
    out = RoIAlign((2, 2), 1.0, 2)(feat, torch.tensor([[0, 0, 0, 3, 3]], dtype=torch.float32))
    assert out.shape == (1, 1, 2, 2) and torch.isfinite(out).all()


def test_faster_rcnn_loss_and_predict_on_cpu():
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.structures import InstanceData

    register_all_modules()
    cfg = Config.fromfile("configs/_base_/models/faster_rcnn_r18_tiny.py")
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    imgs = [torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8) for _ in range(2)]
    samples = []
    for i in range(2):
        s = DetDataSample(metainfo=dict(img_shape=(96, 128), ori_shape=(96, 128), scale_factor=(1.0, 1.0)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[10.0, 20, 40, 60]]) + i,
                                      labels=torch.tensor([0]))
        samples.append(s)
    data = model.data_preprocessor(dict(inputs=imgs, data_samples=samples), training=True)
    model.train()
    losses = model(**data, mode="loss")
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                for k, v in losses.items() if "loss" in k)
    assert torch.isfinite(total)
    total.backward()
    model.eval()
    data = model.data_preprocessor(dict(inputs=imgs, data_samples=samples), training=False)
    with torch.no_grad():
        preds = model(**data, mode="predict")
    assert len(preds) == 2
    for p in preds:
        inst = p.pred_instances
        assert inst.bboxes.shape[1] == 4 and len(inst.bboxes) == len(inst.scores) == len(inst.labels)
        assert torch.isfinite(inst.bboxes).all()
