"""The whole detector under bfloat16 autocast on a CPU (the dispatch CUDA autocast goes through).

Every paper config (AlignShift, TSM, 2.5D, A3D at 3 and 7 slices) trains one step under
``torch.autocast("cpu", dtype=torch.bfloat16)``: the losses are finite and reach every backbone
parameter; the shifting convs compute in bfloat16 while the shift weights stay float32; and the
backbone's features stay within 2 % (relative L2 error; measured 0.6-0.8 %) of the float32 ones.
The heads run in float32 (mmcv's CPU NMS and RoIAlign take float32 only), on the backbone's
features.
"""

import copy
import glob
import os

import pytest
import torch
from test_plugins import batch

pytestmark = pytest.mark.e2e

CONFIGS = sorted(glob.glob("configs/deeplesion/fasterrcnn_densenet_*.py"))
FEATURE_TOLERANCE = 0.02  # relative L2 error of bf16 backbone features vs float32 (measured 0.006-0.008)
SIZE = (64, 64)  # images resized to 64 px: a 16 x 16 feature map, seconds per config


def build(cfg_path, root):
    from mmdet.registry import DATASETS, MODELS
    from mmengine.config import Config

    cfg = Config.fromfile(cfg_path)
    cfg.model.backbone.pretrained = None  # no download in tests
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    for t in ds_cfg.pipeline:
        if t["type"] == "Resize":
            t["scale"] = SIZE
    ds_cfg.update(data_root=str(root) + "/")
    torch.manual_seed(0)
    return MODELS.build(cfg.model), DATASETS.build(ds_cfg)


def _features(model, data):
    model.eval()
    with torch.no_grad():
        dp = model.data_preprocessor(copy.deepcopy(data), training=False)
        return model.extract_feat(model._with_thickness(dp["inputs"], dp["data_samples"]))[0]


@pytest.mark.parametrize("cfg_path", CONFIGS, ids=os.path.basename)
def test_detector_trains_under_bf16_autocast(cfg_path, prepared_root, mmdet_registered):
    from alignshift.nn import AlignShiftConv, Conv1xKxK, TSMConv

    model, ds = build(cfg_path, prepared_root)
    model.init_weights()
    data = batch(ds)
    want = _features(model, data)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _features(model, data)
    assert got.dtype == torch.bfloat16 and want.dtype == torch.float32
    err = ((got.float() - want).norm() / want.norm()).item()
    assert err < FEATURE_TOLERANCE, f"bf16 features off by {err:.3f} (relative L2)"

    shift_outputs = []
    convs = [m for m in model.backbone.modules() if isinstance(m, Conv1xKxK)]
    hooks = [m.register_forward_hook(lambda m, i, o: shift_outputs.append(o.dtype))
             for m in convs if isinstance(m, (AlignShiftConv, TSMConv)) and m.enable_shift]
    model.train()
    dp = model.data_preprocessor(copy.deepcopy(data), training=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(**dp, mode="loss")
    for h in hooks:
        h.remove()
    total, logs = model.parse_losses(losses)
    assert torch.isfinite(total), logs
    assert total.dtype == torch.float32
    total.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    if "2.5d" not in cfg_path:  # 3D: the shifting convs ran in bf16, their weights in float32
        assert convs
        if "a3d" not in cfg_path:
            assert shift_outputs and set(shift_outputs) == {torch.bfloat16}
        for m in convs:
            t = m._bound_thickness
            if t is not None:  # shift weights are made for AlignShift only (TSM's are all 0)
                assert {dtype for _, _, dtype in t._alpha} <= {torch.float32}
                assert t._alpha or not isinstance(m, AlignShiftConv)
