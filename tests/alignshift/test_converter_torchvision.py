"""Whole torchvision networks through ``convert``: shapes at any depth, D = 1 equivalence, where
depth leaves, refusals, and that nothing outside the copy is touched.

The default run covers every network of the issue once at D = 1 (plain, equal to the 2D model) and
once at D = 3 (forward and backward), the conv types spread over the networks. Set
``ALIGNSHIFT_CONVERTER_FULL=1`` for the full matrix (every network x every conv x D in 1, 3, 7).
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from alignshift.converter import CONV_TYPES, UnsupportedLayerError, convert
from alignshift.nn import A3DConv, Conv1xKxK
from alignshift.nn.layers import depth_flatten, slicewise_permute, spatial_reduce

ROOT = Path(__file__).resolve().parents[2]
CLASSIFIERS = ["resnet18", "resnet50", "densenet121", "vgg11_bn", "mobilenet_v2", "mobilenet_v3_large",
               "efficientnet_b0", "regnet_y_400mf", "convnext_tiny"]
SEGMENTATION = ["fcn_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]
NETWORKS = CLASSIFIERS + SEGMENTATION
CONVS = sorted(CONV_TYPES)  # a3d, alignshift, plain, tsm
FULL = os.environ.get("ALIGNSHIFT_CONVERTER_FULL") == "1"
SIZE = 32  # the smallest input every listed network takes (stride 32 -> 1x1)


def _build(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name in SEGMENTATION:
        return getattr(torchvision.models.segmentation, name)(weights=None, weights_backbone=None)
    return getattr(torchvision.models, name)(weights=None)


def _out(y):
    return y["out"] if isinstance(y, dict) else y


def _convert(model: nn.Module, conv: str, depth: int, **kwargs) -> nn.Module:
    if conv == "a3d":
        kwargs["num_slices"] = depth
    return convert(model, conv, **kwargs)


def _check_forward_backward(model2d: nn.Module, name: str, conv: str, depth: int) -> None:
    net = _convert(model2d, conv, depth, in_channels=1).train()
    b = 2 if depth == 1 else 1  # training BatchNorm needs more than one value on 1x1 maps
    x = torch.randn(b, 1, depth, SIZE, SIZE)
    y = _out(net(x, thickness=torch.tensor([2.5, 1.0][:b])))
    want = (b, 21, depth, SIZE, SIZE) if name in SEGMENTATION else (b, 1000)
    assert tuple(y.shape) == want
    y.square().mean().backward()
    grads = [m.weight.grad for m in net.modules() if isinstance(m, Conv1xKxK)]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert grads[0].abs().sum() > 0  # the gradient reaches the stem through every block
    if conv == "a3d":
        assert any(m.depth_mix is not None and m.depth_mix.grad is not None
                   for m in net.modules() if isinstance(m, A3DConv))


def _check_d1_equals_2d(model2d: nn.Module, name: str) -> None:
    model2d.eval()
    net = convert(model2d, "plain").eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        want, got = _out(model2d(x)), _out(net(x.unsqueeze(2)))
    if name in SEGMENTATION:
        got = got.squeeze(2)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * max(1.0, want.abs().max().item()))
    # the 2D weights and their names are carried over unchanged (Linear layers included)
    sd2, sd3 = model2d.state_dict(), net.model.state_dict()
    assert list(sd2) == list(sd3)
    assert all(torch.equal(sd2[k], sd3[k]) for k in sd2)


@pytest.mark.parametrize("name", NETWORKS)
def test_network_converts_at_d1_exactly_and_trains_at_depth(name):
    """One call converts it; plain at D=1 is the 2D model; at D=3 forward and backward run."""
    model = _build(name)
    _check_d1_equals_2d(model, name)
    conv = CONVS[NETWORKS.index(name) % len(CONVS)]  # each conv type on three networks
    _check_forward_backward(model, name, conv, 3)


@pytest.mark.skipif(not FULL, reason="full matrix: set ALIGNSHIFT_CONVERTER_FULL=1")
@pytest.mark.parametrize("name", NETWORKS)
def test_full_matrix(name):
    model = _build(name)
    for conv, depth in itertools.product(CONVS, (1, 3, 7)):
        _check_forward_backward(model, name, conv, depth)


@pytest.mark.parametrize("conv,depth", [(c, 7) for c in CONVS] + [("a3d", 1), ("alignshift", 1)])
def test_every_conv_at_d1_and_d7(conv, depth):
    model = torchvision.models.mobilenet_v3_small(weights=None)
    _check_forward_backward(model, "mobilenet_v3_small", conv, depth)


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def test_depth_reduce_modes_on_a_classifier(resnet18):
    """plain convs: 'key' is the 2D model on the middle slice; 'mean' the mean of the per-slice
    logits (the classifier is linear); 'max' the classifier on the slice-wise max of the pooled
    features."""
    x = torch.randn(1, 3, 3, SIZE, SIZE)
    with torch.no_grad():
        trunk = nn.Sequential(*list(resnet18.children())[:-1])
        feats = torch.stack([trunk(x[:, :, d]).flatten(1) for d in range(3)], 2)
        per_slice = torch.stack([resnet18.fc(feats[:, :, d]) for d in range(3)], 2)
        got = {mode: convert(resnet18, "plain", depth_reduce=mode).eval()(x)
               for mode in ("mean", "max", "key")}
    torch.testing.assert_close(got["key"], per_slice[:, :, 1], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got["mean"], per_slice.mean(2), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got["max"], resnet18.fc(feats.amax(2)), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="depth_reduce"):
        convert(resnet18, "plain", depth_reduce="median")


def test_thickness_changes_alignshift_not_tsm(resnet18):
    x = torch.randn(1, 1, 5, SIZE, SIZE)
    thin, thick = torch.tensor([0.5]), torch.tensor([5.0])
    with torch.no_grad():
        for conv, changes in (("alignshift", True), ("tsm", False)):
            net = convert(resnet18, conv, in_channels=1).eval()
            a, b = net(x, thickness=thin), net(x, thickness=thick)
            assert (not torch.allclose(a, b)) is changes, conv


def test_in_channels_1_grey_image_gives_the_pretrained_response_to_a_third(resnet18):
    """Documented: the 1-channel stem is the RGB mean, so a grey image ``3 * g`` gives the 2D
    model's response to the RGB image ``(g, g, g)``."""
    g = torch.rand(1, 1, SIZE, SIZE)
    net = convert(resnet18, "plain", in_channels=1).eval()
    with torch.no_grad():
        torch.testing.assert_close(net(3 * g.unsqueeze(2)), resnet18(g.expand(1, 3, SIZE, SIZE)),
                                   rtol=1e-4, atol=1e-5)


def _class_state(model: nn.Module) -> dict:
    classes = {type(m) for m in model.modules()} | {nn.Module, nn.Conv2d, nn.LayerNorm, nn.Flatten}
    return {cls: dict(vars(cls)) for cls in classes}


def test_no_class_is_patched_and_the_original_is_untouched():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    torch.manual_seed(0)
    model = ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)], num_classes=4).eval()
    before, sd = _class_state(model), {k: v.clone() for k, v in model.state_dict().items()}
    net = convert(model, "alignshift", in_channels=1)
    x = torch.randn(1, 3, SIZE, SIZE)
    assert net(x[:, :1].unsqueeze(2).expand(1, 1, 3, SIZE, SIZE), torch.tensor([2.0])).shape == (1, 4)
    assert _class_state(model) == before
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in sd.items())
    assert any(type(m) is nn.Conv2d for m in model.modules())
    model(x)  # the 2D model still runs in 2D


def test_converted_graph_module_pickles_and_keeps_its_blocks():
    import io

    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    torch.manual_seed(0)
    model = ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)], num_classes=4).eval()
    net = convert(model, "alignshift", in_channels=1).eval()
    assert isinstance(net.model.features[1][0].block[0], Conv1xKxK)  # the blocks, not bare containers
    x, t = torch.randn(1, 1, 3, SIZE, SIZE), torch.tensor([2.0])
    buf = io.BytesIO()
    torch.save(net, buf)  # re-traces the generated code on load
    buf.seek(0)
    with torch.no_grad():
        torch.testing.assert_close(torch.load(buf, weights_only=False)(x, t), net(x, t))


def test_token_transformers_are_refused():
    from torchvision.models.swin_transformer import SwinTransformer
    from torchvision.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=1, hidden_dim=8,
                            mlp_dim=8)
    swin = SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 1],
                           window_size=[2, 2])
    for model in (vit, swin):
        with pytest.raises(UnsupportedLayerError):
            convert(model, "alignshift")
    with pytest.raises(UnsupportedLayerError, match="attends across tokens"):
        convert(vit, "plain", trace=False)
    with pytest.raises(UnsupportedLayerError, match="shifted_window_attention|opaque"):
        convert(swin, "plain")
    with pytest.raises(UnsupportedLayerError, match="reshapes"):
        convert(torchvision.models.shufflenet_v2_x0_5(weights=None), "plain")
    with pytest.raises(UnsupportedLayerError, match="Flatten"):
        convert(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(2)), "plain")


class _HandWritten(nn.Module):
    """2D idioms seen in the wild: an SE gate from a keepdim mean, a channels-last permute, global
    pooling by ``mean([2, 3])`` and ``view(B, -1)``."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gate = nn.Conv2d(8, 8, 1)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.conv(x)
        x = x * torch.sigmoid(self.gate(x.mean((2, 3), keepdim=True)))
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        v = torch.cat([x.mean([2, 3]), x.amax((-2, -1))], 1)
        return self.fc(v.view(v.size(0), -1))


def test_hand_written_2d_idioms():
    torch.manual_seed(0)
    model = _HandWritten().eval()
    x = torch.randn(2, 3, 4, 9, 9)
    for mode in ("key", "mean"):
        net = convert(model, "plain", depth_reduce=mode).eval()
        with torch.no_grad():
            got = net(x)
            per_slice = torch.stack([model(x[:, :, d]) for d in range(4)], 2)
        assert got.shape == (2, 5)
        want = per_slice[:, :, 2] if mode == "key" else per_slice.mean(2)  # fc is linear
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(convert(model, "plain").eval()(x[:, :, :1]), model(x[:, :, 0]))
    assert convert(model, "tsm")(x).shape == (2, 5)


def test_5d_helpers():
    x = torch.randn(2, 3, 4, 5, 6)
    cl = slicewise_permute(x, 0, 2, 3, 1)
    assert cl.shape == (2, 5, 4, 6, 3)  # depth stays on axis 2, beside height and width
    assert torch.equal(slicewise_permute(cl, [0, 3, 1, 2]), x)
    assert spatial_reduce(x, "mean", (2, 3), False, "key").shape == (2, 3)
    assert spatial_reduce(x, "mean", (2, 3), True).shape == (2, 3, 4, 1, 1)
    assert spatial_reduce(x, "amax", 1, False).shape == (2, 4, 5, 6)
    assert torch.equal(depth_flatten(x, 1, -1, "key"), x[:, :, 2].flatten(1))
    assert torch.equal(depth_flatten(x, 2), x.flatten(2))  # not into vectors: left alone
    assert torch.equal(depth_flatten(x[:, :, 0], 1), x[:, :, 0].flatten(1))


def _runnable_python_blocks(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    return re.findall(r"<!-- runnable -->\n```python\n(.*?)```", text, flags=re.S)


_DOCS_TEST = ROOT / "tests" / "test_docs.py"


@pytest.mark.skipif(_DOCS_TEST.exists() and "docs" in _DOCS_TEST.read_text(encoding="utf-8"),
                    reason="tests/test_docs.py runs the runnable blocks of docs/")
def test_docs_converter_examples_run():
    """Every ```python block preceded by ``<!-- runnable -->`` in docs/converter.md runs as written."""
    blocks = _runnable_python_blocks(ROOT / "docs" / "converter.md")
    assert len(blocks) >= 2
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for code in blocks:
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, f"{code}\n{proc.stderr[-3000:]}"
