"""GradNormRecorderHook: per-group gradient norms before clipping, one JSON line per iteration."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmdet_plugins.diagnostics import GradNormRecorderHook, layer_group, summarise


def test_layer_groups():
    name = "backbone.net.body.model.features.denseblock2.denselayer3.conv1.weight"
    assert layer_group(name) == "denseblock2"
    assert layer_group("backbone.net.body.model.features.norm0.weight") == "stem"
    assert layer_group("backbone.net.body.features.conv0.weight") == "stem"
    assert layer_group("backbone.net.top_down.laterals.0.weight") == "top_down"
    assert layer_group("backbone.net.reductions.1.bias") == "reductions"
    assert layer_group("rpn_head.rpn_conv.weight") == "rpn_head"
    assert layer_group("roi_head.bbox_head.shared_fcs.0.weight") == "roi_head.shared_fcs"


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
        self.rpn_head = nn.Conv2d(4, 2, 1)


@pytest.mark.parametrize("max_norm", [1e-3, 1e3])
def test_records_the_norms_before_clipping(tmp_path, max_norm):
    torch.manual_seed(0)
    model = Tiny()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1),
                           clip_grad=dict(max_norm=max_norm, norm_type=2))
    runner = SimpleNamespace(model=model, optim_wrapper=wrapper, work_dir=str(tmp_path), iter=0, epoch=0)
    hook = GradNormRecorderHook(modules=["backbone"])
    hook.before_train(runner)
    x = torch.randn(2, 1, 8, 8)
    for it in range(2):
        feat = model.backbone(x)
        loss = model.rpn_head(feat).pow(2).mean() * 100
        rms, peak = float(feat.detach().pow(2).mean().sqrt()), float(feat.detach().abs().max())
        # the norm backward gives, before the wrapper clips it
        grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
        total = math.sqrt(sum(float(g.pow(2).sum()) for g in grads))
        bn = math.sqrt(sum(float(g.pow(2).sum()) for g in grads[2:4]))
        wrapper.update_params(loss)
        runner.iter = it
        hook.after_train_iter(runner, it, outputs=dict(loss=loss.detach()))
    hook.after_train(runner)
    recs = [json.loads(line) for line in open(tmp_path / "grad_norms.jsonl")]
    assert [r["iter"] for r in recs] == [0, 1] and recs[0]["lr"] == 0.1
    r = recs[1]
    assert set(r["groups"]) == {"backbone", "backbone/bn", "rpn_head"}
    assert r["grad_norm"] == pytest.approx(total, rel=1e-4)
    assert math.sqrt(sum(v * v for v in r["groups"].values())) == pytest.approx(total, rel=1e-3)
    assert r["groups"]["backbone/bn"] == pytest.approx(bn, rel=1e-3)
    assert r["losses"]["loss"] > 0
    assert r["outputs"]["backbone"] == pytest.approx([rms, peak], rel=1e-4)
    with pytest.raises(KeyError, match="no module 'neck'"):
        GradNormRecorderHook(modules=["neck"]).before_train(runner)
    assert summarise(str(tmp_path / "grad_norms.jsonl"), every=2)[0]["grad_norm"] == max(
        q["grad_norm"] for q in recs)
