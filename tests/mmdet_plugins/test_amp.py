"""Mixed-precision training through mmengine's Runner: ``enable_amp`` on a CPU (bfloat16)."""

import copy

import pytest
import torch
from mmengine.config import Config

pytestmark = pytest.mark.e2e

CONFIG = "configs/demo/alignshift_3slice_synthetic.py"


def _tiny_cfg(root, work_dir):
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(work_dir)
    cfg.launcher = "none"
    cfg.train_dataloader.dataset.data_root = str(root) + "/"
    cfg.train_dataloader.dataset.indices = 4  # 2 iterations of 2 images
    for t in cfg.train_dataloader.dataset.pipeline:
        if t["type"] == "Resize":
            t["scale"] = (64, 64)
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=1, val_interval=1)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1
    cfg.param_scheduler = []
    return cfg


def test_enable_amp_cuda_is_mmengines_amp_wrapper():
    from mmdet_plugins.amp import enable_amp

    cfg = Config.fromfile(CONFIG)
    clip = copy.deepcopy(cfg.optim_wrapper.clip_grad)
    enable_amp(cfg, "cuda")
    assert cfg.optim_wrapper.type == "AmpOptimWrapper" and cfg.optim_wrapper.loss_scale == "dynamic"
    assert cfg.optim_wrapper.clip_grad == clip  # the rest is kept
    with pytest.raises(ValueError, match="'cuda' or 'cpu', got device 'mps'"):
        enable_amp(cfg, "mps")


def test_cpu_amp_trains_through_the_runner(prepared_root, mmdet_registered, tmp_path):
    from mmengine.registry import RUNNERS

    from mmdet_plugins.amp import AutocastOptimWrapper, enable_amp

    cfg = _tiny_cfg(prepared_root, tmp_path)
    enable_amp(cfg, "cpu")
    runner = RUNNERS.build(cfg)
    seen = []

    def record(module, args, out):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), out[0].dtype))

    model = runner.model
    model.backbone.register_forward_hook(record)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    runner.train()
    assert isinstance(runner.optim_wrapper, AutocastOptimWrapper)
    assert len(seen) == 2  # two iterations, each under bf16 autocast
    assert all(s == (True, torch.bfloat16, torch.bfloat16) for s in seen), seen
    after = dict(model.named_parameters())
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in after.values())
    moved = [k for k in before if not torch.equal(before[k], after[k].detach())]
    assert any(k.startswith("backbone.") for k in moved)
    assert any(k.startswith("roi_head.") for k in moved)
    loss = runner.message_hub.get_scalar("train/loss").current()
    assert loss == loss and abs(loss) < 1e4  # finite
