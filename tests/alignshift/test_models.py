import functools
import http.server
import threading

import pytest
import torch
import torchvision

from alignshift.models import (
    DenseNetBackbone3D,
    DenseNetBackbone25D,
    TruncatedDenseNet2d,
    load_imagenet_weights,
)
from alignshift.nn import AlignShiftConv


@pytest.mark.parametrize("conv", ["plain", "tsm", "alignshift", "a3d"])
def test_3d_backbone_shapes_and_backward(conv):
    torch.manual_seed(0)
    net = DenseNetBackbone3D(conv, num_slices=3)
    x = torch.randn(2, 3, 64, 96)
    y = net(x, torch.tensor([1.0, 5.0]))
    assert y.shape == (2, 512, 16, 24)
    y.mean().backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None]
    # only the stem's depth mixing is unused: the first conv stays plain
    assert no_grad == []  # plain A3D convs (stem, transitions) carry no depth_mix


def test_25d_backbone():
    net = DenseNetBackbone25D(num_slices=7)
    assert net(torch.randn(1, 7, 64, 64)).shape == (1, 512, 16, 16)
    with pytest.raises(ValueError, match="7"):
        net(torch.randn(1, 3, 64, 64))


def test_depth_reduction_starts_at_key_slice():
    torch.manual_seed(0)
    plain = DenseNetBackbone3D("plain", num_slices=7).eval()
    tsm = DenseNetBackbone3D("tsm", num_slices=7).eval()
    tsm.load_state_dict(plain.state_dict())
    x = torch.randn(1, 7, 64, 64)
    x2 = x.clone()
    x2[:, [0, 1, 5, 6]] = torch.randn(1, 4, 64, 64)  # only the key slice's neighbours change
    x3 = x.clone()
    x3[:, [2, 4]] = torch.randn(1, 2, 64, 64)
    with torch.no_grad():
        # plain 1xKxK convs mix nothing across slices: the key-slice map ignores its neighbours
        torch.testing.assert_close(plain(x), plain(x2))
        # TSM sees neighbours
        assert not torch.allclose(tsm(x), tsm(x3))


def test_alignshift_backbone_uses_thickness_and_convs():
    net = DenseNetBackbone3D("alignshift", num_slices=3).eval()
    convs = {n: m for n, m in net.named_modules() if isinstance(m, AlignShiftConv)}
    assert len(convs) == 1 + 2 * (6 + 12 + 24) + 2
    # as published: the stem and the transitions keep depth apart, every dense-layer conv shifts
    plain = sorted(n for n, m in convs.items() if not m.enable_shift)
    assert plain == ["body.model.features.conv0", "body.model.features.transition1.conv",
                     "body.model.features.transition2.conv"]
    shifting = DenseNetBackbone3D("alignshift", num_slices=3, shift_transitions=True)
    assert sum(not m.enable_shift for m in shifting.modules() if isinstance(m, AlignShiftConv)) == 1
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(net(x, torch.tensor([1.0])), net(x, torch.tensor([5.0])))
    with pytest.raises(ValueError, match="thickness"):
        net(x)


def test_memory_efficient_matches():
    torch.manual_seed(0)
    a = DenseNetBackbone3D("alignshift", num_slices=3)
    b = DenseNetBackbone3D("alignshift", num_slices=3, memory_efficient=True)
    b.load_state_dict(a.state_dict())
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([0.7, 5.0])
    ya, yb = a(x, t), b(x, t)
    torch.testing.assert_close(ya, yb)
    ya.square().mean().backward()
    yb.square().mean().backward()
    ga = a.body.model.features.denseblock1.denselayer1.conv1.weight.grad
    gb = b.body.model.features.denseblock1.denselayer1.conv1.weight.grad
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def torchvision_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "densenet121-test.pth"
    state = torchvision.models.densenet121(weights=None).state_dict()
    torch.save(state, path)
    return path, state


def _check_loaded(body, state):
    for k, v in body.state_dict().items():
        if k != "features.conv0.weight" and not k.endswith("depth_mix"):
            assert torch.equal(v, state[k]), k


def test_load_imagenet_weights_from_file(torchvision_checkpoint):
    path, state = torchvision_checkpoint
    body = TruncatedDenseNet2d()
    unused = load_imagenet_weights(body, str(path))
    _check_loaded(body, state)
    assert torch.equal(body.state_dict()["features.conv0.weight"], state["features.conv0.weight"])
    assert any(k.startswith("features.denseblock4") for k in unused)
    assert "classifier.weight" in unused


def test_load_imagenet_weights_from_url(torchvision_checkpoint, tmp_path):
    path, state = torchvision_checkpoint
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
        net = DenseNetBackbone3D("alignshift", num_slices=3, pretrained=None)
        body = TruncatedDenseNet2d(in_channels=1)
        load_imagenet_weights(body, url, model_dir=str(tmp_path), progress=False)
        _check_loaded(body, state)
        torch.testing.assert_close(body.state_dict()["features.conv0.weight"],
                                   state["features.conv0.weight"].mean(1, keepdim=True))
        assert (tmp_path / path.name).exists()  # cached by torch.hub
        assert net is not None
    finally:
        server.shutdown()


@pytest.mark.parametrize("cls", [DenseNetBackbone3D, DenseNetBackbone25D])
def test_first_conv_init_center_takes_green(torchvision_checkpoint, cls):
    path, state = torchvision_checkpoint
    rgb = state["features.conv0.weight"]
    if cls is DenseNetBackbone3D:
        net = cls("tsm", num_slices=3, first_conv_init="center")
        net.load_pretrained(str(path))
        got, want = net.body.model.state_dict()["features.conv0.weight"], rgb[:, 1:2]
    else:
        net = cls(num_slices=7, first_conv_init="center")
        net.load_pretrained(str(path))
        got, want = net.body.state_dict()["features.conv0.weight"], rgb[:, [1, 2, 0, 1, 2, 0, 1]]
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="first_conv_init"):
        cls(first_conv_init="green")


def test_load_rejects_wrong_checkpoint(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="lacks"):
        load_imagenet_weights(TruncatedDenseNet2d(), str(path))


@pytest.mark.parametrize("conv", ["alignshift", "a3d"])
def test_pretrained_into_3d_backbone(torchvision_checkpoint, conv):
    path, state = torchvision_checkpoint
    net = DenseNetBackbone3D(conv, num_slices=3, pretrained=str(path))
    _check_loaded(net.body.model, state)
    net25 = DenseNetBackbone25D(num_slices=3, pretrained=str(path))
    _check_loaded(net25.body, state)


def test_neck_init_published_is_random_with_zero_bias():
    torch.manual_seed(0)
    ours = DenseNetBackbone3D("tsm", num_slices=3)
    pub = DenseNetBackbone3D("tsm", num_slices=3, neck_init="published")
    red = ours.reductions[0].weight  # (C, C, D, 1, 1): a copy of the key slice
    assert torch.equal(red[:, :, 1].squeeze(-1).squeeze(-1), torch.eye(red.shape[0]))
    for m in list(pub.reductions) + list(pub.top_down.laterals):
        assert torch.count_nonzero(m.bias) == 0 and m.weight.std() > 0
    assert not torch.equal(pub.reductions[0].weight, red)
    net25 = DenseNetBackbone25D(num_slices=3, neck_init="published")
    assert all(torch.count_nonzero(lat.bias) == 0 for lat in net25.top_down.laterals)
    with pytest.raises(ValueError, match="neck_init"):
        DenseNetBackbone3D("tsm", num_slices=3, neck_init="kaiming")
