import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from alignshift.converter import UnsupportedLayerError, adapt_in_channels, convert
from alignshift.nn import A3DConv, AlignShiftConv, Conv1xKxK, TSMConv
from alignshift.ops import align_shift, tsm_shift


def test_conv_modules_keep_2d_weights_and_match_functional():
    conv2d = nn.Conv2d(16, 8, 3, stride=2, padding=1)
    x = torch.randn(2, 16, 5, 12, 12)
    t = torch.tensor([1.0, 5.0])
    for cls in (Conv1xKxK, TSMConv, AlignShiftConv):
        m = cls(16, 8, 3, stride=2, padding=1)
        assert m.weight.shape == conv2d.weight.shape
        m.load_state_dict(conv2d.state_dict())  # 2D checkpoints load unchanged
        w3 = conv2d.weight.unsqueeze(2)
        ref = {Conv1xKxK: x, TSMConv: tsm_shift(x), AlignShiftConv: align_shift(x, t)}[cls]
        want = F.conv3d(ref, w3, conv2d.bias, (1, 2, 2), (0, 1, 1))
        torch.testing.assert_close(m(x, t), want)
        m.enable_shift = False
        torch.testing.assert_close(m(x, t), F.conv3d(x, w3, conv2d.bias, (1, 2, 2), (0, 1, 1)))


def test_plain_conv_is_per_slice_conv2d():
    conv2d = nn.Conv2d(4, 6, 3, padding=1, groups=2, padding_mode="reflect")
    m = Conv1xKxK(4, 6, 3, padding=1, groups=2, padding_mode="reflect")
    m.load_state_dict(conv2d.state_dict())
    x = torch.randn(2, 4, 3, 9, 9)
    for d in range(3):
        torch.testing.assert_close(m(x)[:, :, d], conv2d(x[:, :, d]))


def test_a3d_starts_near_identity_and_learns():
    m = A3DConv(8, 8, 3, padding=1, num_slices=5)
    plain = Conv1xKxK(8, 8, 3, padding=1)
    plain.load_state_dict(m.state_dict(), strict=False)
    x = torch.randn(2, 8, 5, 6, 6)
    assert (m(x) - plain(x)).abs().max() < 0.05
    m(x).sum().backward()
    assert m.depth_mix.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="D=5"):
        m(torch.randn(2, 8, 3, 6, 6))
    off = A3DConv(8, 8, 3, padding=1, num_slices=5, enable_shift=False)
    assert off.depth_mix is None and "depth_mix" not in off.state_dict()
    off.load_state_dict(plain.state_dict())
    torch.testing.assert_close(off(x), plain(x))
    off.enable_shift = True
    with pytest.raises(RuntimeError, match="enable_shift=False"):
        off(x)


def test_alignshift_conv_needs_thickness():
    with pytest.raises(ValueError, match="thickness"):
        AlignShiftConv(8, 8, 1)(torch.randn(1, 8, 3, 4, 4))


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "vgg11_bn", "mobilenet_v3_small"])
def test_plain_conversion_equals_2d_original_at_d1(name):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    forward_before = type(model).forward
    net3d = convert(model, conv="plain").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = model(x), net3d(x.unsqueeze(2))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert type(model).forward is forward_before
    assert isinstance(model.state_dict(), dict) and any(  # the original is untouched
        type(m) is nn.Conv2d for m in model.modules())


def test_weights_carried_exactly():
    model = torchvision.models.resnet18(weights=None)
    net3d = convert(model, conv="alignshift")
    sd2, sd3 = model.state_dict(), net3d.model.state_dict()
    assert set(sd2) == set(sd3)
    for k in sd2:
        assert torch.equal(sd2[k], sd3[k]), k
    convs = [m for m in net3d.modules() if isinstance(m, Conv1xKxK)]
    assert all(isinstance(m, AlignShiftConv) for m in convs)
    assert not convs[0].enable_shift and all(m.enable_shift for m in convs[1:])


def test_no_shift_patterns_switch_named_convs_off():
    model = torchvision.models.resnet18(weights=None)
    net3d = convert(model, conv="tsm", no_shift=["layer2.*.downsample*", "layer4.1.conv2"])
    off = sorted(n for n, m in net3d.model.named_modules()
                 if isinstance(m, Conv1xKxK) and not m.enable_shift)
    assert off == ["conv1", "layer2.0.downsample.0", "layer4.1.conv2"]
    with pytest.raises(ValueError, match="layer9"):
        convert(model, conv="tsm", no_shift=["layer9.*"])


def _basic_block_ref(block, x, t):
    def conv(c, v):
        v = align_shift(v, t) if c.enable_shift else v
        return F.conv3d(v, c.weight.unsqueeze(2), c.bias, (1, *c.stride), (0, *c.padding))

    def bn(b, v):
        return F.batch_norm(v, b.running_mean, b.running_var, b.weight, b.bias, False, 0.0, b.eps)

    out = F.relu(bn(block.bn1, conv(block.conv1, x)))
    out = bn(block.bn2, conv(block.conv2, out))
    idn = x if block.downsample is None else bn(block.downsample[1], conv(block.downsample[0], x))
    return F.relu(out + idn)


def test_converted_resnet_matches_hand_written_reference():
    torch.manual_seed(1)
    model = torchvision.models.resnet18(weights=None)
    for m in model.modules():  # non-trivial running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    # without pooling and classifier, the flatten reduces depth by its mean (depth_reduce='mean')
    model.avgpool, model.fc = nn.Identity(), nn.Identity()
    net = convert(model, conv="alignshift").eval()
    x, t = torch.randn(2, 3, 5, 48, 48), torch.tensor([1.25, 5.0])
    m = net.model
    with torch.no_grad():
        v = F.conv3d(x, m.conv1.weight.unsqueeze(2), None, (1, 2, 2), (0, 3, 3))
        v = F.relu(F.batch_norm(v, m.bn1.running_mean, m.bn1.running_var, m.bn1.weight,
                                m.bn1.bias, False, 0.0, m.bn1.eps))
        v = F.max_pool3d(v, (1, 3, 3), (1, 2, 2), (0, 1, 1))
        for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
            for block in layer:
                v = _basic_block_ref(block, v, t)
        torch.testing.assert_close(net(x, t), v.mean(2).flatten(1), rtol=1e-5, atol=1e-5)


def test_models_never_see_each_others_thickness():
    torch.manual_seed(2)
    base = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    a, b = convert(base, "alignshift"), convert(base, "alignshift")
    x = torch.randn(2, 1, 5, 8, 8)
    ta, tb = torch.tensor([1.0, 1.0]), torch.tensor([5.0, 10.0])
    want_a, want_b = a(x, ta), b(x, tb)
    for _ in range(2):
        got_a, got_b = a(x, ta), b(x, tb)
        torch.testing.assert_close(got_a, want_a)
        torch.testing.assert_close(got_b, want_b)
    assert not torch.allclose(want_a, want_b)
    assert type(a.model).forward is nn.Sequential.forward


def test_unsupported_layer_is_named():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.LSTM(4, 4)))
    with pytest.raises(UnsupportedLayerError, match=r"'1\.0'.*LSTM"):
        convert(model, "tsm")
    convert(model, "tsm", keep=(nn.LSTM,))  # explicitly kept


def test_functional_conv_in_forward_is_refused():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 3, 3, 3))

        def forward(self, x):
            return F.conv2d(x, self.w)

    with pytest.raises(UnsupportedLayerError, match="conv2d"):
        convert(Net(), "plain")


def test_in_channels_adaptation():
    w = torch.randn(8, 3, 3, 3)
    torch.testing.assert_close(adapt_in_channels(w, 1), w.mean(1, keepdim=True))
    w7 = adapt_in_channels(w, 7)
    assert w7.shape == (8, 7, 3, 3)
    # a grey image repeated over the inputs gives exactly the RGB response
    torch.testing.assert_close(w7.sum(1), w.sum(1))
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1))
    net = convert(model, "tsm", in_channels=1)
    assert net(torch.randn(1, 1, 3, 8, 8)).shape == (1, 4, 3, 6, 6)


def test_in_channels_center_mode_is_the_published_tiling():
    w = torch.randn(8, 3, 3, 3)
    torch.testing.assert_close(adapt_in_channels(w, 1, "center"), w[:, 1:2])  # green alone
    torch.testing.assert_close(adapt_in_channels(w, 3, "center"), w)
    g, b, r = w[:, 1:2], w[:, 2:3], w[:, 0:1]
    torch.testing.assert_close(adapt_in_channels(w, 7, "center"), torch.cat([g, b, r, g, b, r, g], 1))
    with pytest.raises(ValueError, match="'mean' or 'center'"):
        adapt_in_channels(w, 1, "green")


def test_pools_norms_and_upsample_convert():
    model = nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.AvgPool2d(2), nn.GroupNorm(2, 8), nn.Upsample(scale_factor=2, mode="bilinear"),
        nn.InstanceNorm2d(8, affine=True), nn.AdaptiveAvgPool2d(3)).eval()
    net = convert(model, "plain").eval()
    x = torch.randn(2, 2, 4, 16, 16)
    y = net(x)
    assert y.shape == (2, 8, 4, 3, 3)
    with torch.no_grad():
        for d in range(4):
            torch.testing.assert_close(y[:, :, d], model(x[:, :, d]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [TSMConv, AlignShiftConv])
@pytest.mark.parametrize("shift_padding", ["zeros", "replicate"])
@pytest.mark.parametrize("depth", [1, 2, 3, 7])
def test_fused_shift_conv_matches_unfused_and_gradchecks(cls, shift_padding, depth):
    from alignshift.ops import shift_alpha, shift_conv3d

    torch.manual_seed(0)
    m = cls(8, 6, 3, stride=(1, 2), padding=1, bias=True, n_fold=4,
            shift_padding=shift_padding).double()
    x = torch.randn(2, 8, depth, 7, 7, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([1.0, 3.0], dtype=torch.float64)
    fused = m(x, t)
    unfused = m.conv1xkxk(m.mix_depth(x, t))
    torch.testing.assert_close(fused, unfused)
    g = torch.randn_like(fused)
    grads_f = torch.autograd.grad(fused, (x, m.weight, m.bias), g)
    grads_u = torch.autograd.grad(unfused, (x, m.weight, m.bias), g)
    for a, b in zip(grads_f, grads_u):
        torch.testing.assert_close(a, b)
    alpha = shift_alpha(t) if cls is AlignShiftConv else torch.zeros(2, dtype=torch.float64)
    w = m.weight.detach().unsqueeze(2).requires_grad_()
    b = m.bias.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, w, b: shift_conv3d(x, w, b, alpha, 4, shift_padding, (1, 1, 2), (0, 1, 1),
                                     (1, 1, 1), 1), (x, w, b))


def test_norm_state_dict_keys_unchanged():
    model = nn.Sequential(nn.Conv2d(2, 8, 3), nn.GroupNorm(2, 8), nn.InstanceNorm2d(8, affine=True),
                          nn.BatchNorm2d(8))
    for m in model.modules():
        if hasattr(m, "weight") and m.weight is not None:
            nn.init.uniform_(m.weight)
    net = convert(model, "tsm")
    sd2, sd3 = model.state_dict(), net.model.state_dict()
    assert list(sd2) == list(sd3)
    assert all(torch.equal(sd2[k], sd3[k]) for k in sd2)
    net.model.load_state_dict(sd2)  # a 2D checkpoint loads unchanged


@pytest.mark.parametrize("cls", [AlignShiftConv, TSMConv])
def test_shift_convs_train_under_autocast(cls):
    """Mixed precision (mmengine's AmpOptimWrapper): bf16 compute, float32 gradients."""
    torch.manual_seed(0)
    conv = cls(16, 8, 3, padding=1)
    x = torch.randn(2, 16, 5, 6, 6, requires_grad=True)
    t = torch.tensor([1.0, 5.0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x, t)
    assert y.dtype == torch.bfloat16
    y.float().square().mean().backward()
    gx, gw = x.grad.clone(), conv.weight.grad.clone()
    assert gx.dtype == gw.dtype == torch.float32
    x.grad, conv.weight.grad = None, None
    y32 = conv(x, t)
    y32.square().mean().backward()
    torch.testing.assert_close(y.float(), y32, rtol=0.05, atol=0.05)
    torch.testing.assert_close(gw, conv.weight.grad, rtol=0.05, atol=0.05 * gw.abs().max().item())
    torch.testing.assert_close(gx, x.grad, rtol=0.05, atol=0.05 * gx.abs().max().item())


@pytest.mark.parametrize("conv", ["alignshift", "tsm"])
def test_converted_model_under_torch_compile_matches_eager(conv):
    """``torch.compile`` (Inductor) of a converted network gives the eager outputs and gradients.

    Before the shift became a custom op, Inductor failed on this network (BackendCompilerFailed in
    the graphs resumed after the shift's slicing). The thickness is checked inside the graph
    (``torch._assert_async``), so there is no graph break at all.
    """
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 32, 1), nn.ReLU(), nn.Conv2d(32, 8, 3, padding=1))
    net = convert(model, conv, in_channels=1)
    net.model[8].padding_mode = "reflect"  # not fused: the standalone shift, then the conv
    x = torch.randn(2, 1, 5, 8, 8, requires_grad=True)
    t = torch.tensor([1.25, 5.0])
    y = net(x, t)
    grads = torch.autograd.grad(y.square().sum(), (x, *net.parameters()))
    torch._dynamo.reset()
    assert torch._dynamo.explain(net)(x, t).graph_break_count == 0
    torch._dynamo.reset()
    compiled = torch.compile(net, fullgraph=True)
    y_c = compiled(x, t)
    grads_c = torch.autograd.grad(y_c.square().sum(), (x, *net.parameters()))
    tol = dict(rtol=1e-4, atol=1e-4)  # Inductor fuses and reorders float32 arithmetic
    torch.testing.assert_close(y_c, y, **tol)
    for a, b in zip(grads_c, grads):
        torch.testing.assert_close(a, b, **tol)
    thick = torch.tensor([5.0, 5.0])  # new values, same shapes: no stale result
    torch.testing.assert_close(compiled(x, thick), net(x, thick), **tol)


@pytest.mark.parametrize("cls", [AlignShiftConv, TSMConv])
def test_shift_conv_compiles_without_graph_breaks(cls):
    """With the thickness validated outside (a SliceThickness, as a converted model passes it),
    a shifting conv is one graph: the fused op is opaque to the compiler."""
    from alignshift.ops import SliceThickness

    torch.manual_seed(0)
    conv = cls(16, 8, 3, padding=1, bias=True)
    x = torch.randn(2, 16, 5, 6, 6, requires_grad=True)
    t = SliceThickness([1.25, 5.0], 2)
    torch._dynamo.reset()
    compiled = torch.compile(conv, backend="aot_eager", fullgraph=True)
    y_c = compiled(x, t)
    y = conv(x, t)
    torch.testing.assert_close(y_c, y)
    g = torch.randn_like(y)
    for a, b in zip(torch.autograd.grad(y_c, (x, conv.weight, conv.bias), g),
                    torch.autograd.grad(y, (x, conv.weight, conv.bias), g)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("channels_last", [False, True])
def test_custom_ops_pass_opcheck(channels_last):
    """Schema, fake (shape-only) versions, autograd registration and AOT dispatch of the ops that
    ``torch.compile`` calls, for contiguous and channels-last input."""
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    x = torch.randn(2, 8, 3, 5, 5, dtype=torch.float64).to(memory_format=fmt).requires_grad_()
    w = torch.randn(4, 8, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    a = torch.tensor([0.0, 0.6], dtype=torch.float64).view(2, 1, 1, 1, 1)
    ops = torch.ops.alignshift
    torch.library.opcheck(ops.shift_conv3d.default,
                          (x, w, b, a, 1, True, [1, 1, 1], [0, 1, 1], [1, 1, 1], 1, "auto"))
    torch.library.opcheck(ops.shift_conv3d.default,
                          (x, w, None, a, 1, False, [1, 2, 2], [0, 0, 0], [1, 1, 1], 1, "auto"))
    for op in (ops.depth_shift.default, ops.depth_shift_adjoint.default):
        torch.library.opcheck(op, (x, a, 2, True, "auto"))
