"""``torch.compile(..., fullgraph=True)`` (Inductor, CPU) of converted networks and the backbones.

No graph break anywhere: the shifts are opaque custom ops (``torch.ops.alignshift``) and the
thickness is checked inside the graph. Compiled outputs and gradients are compared with eager mode
in float64, where a difference can only come from a different computation (measured about 1e-13
of the largest value); in float32 Inductor's reordered reductions alone give up to about 2e-5
(tests/alignshift/test_nn_converter.py compares float32 at 1e-4).

Compiling a whole DenseNet backbone takes one to several minutes on a CPU: those tests are marked
``slow`` and run with ``ALIGNSHIFT_SLOW_TESTS=1``.
"""

import pytest
import torch

from alignshift.converter import convert
from alignshift.models import DenseNetBackbone3D, DenseNetBackbone25D

TOL = 1e-5  # of the largest absolute value of each compared tensor


def _close(got, want, what):
    scale = want.abs().max().item() or 1.0
    err = (got - want).abs().max().item() / scale
    assert err <= TOL, f"{what}: compiled differs from eager by {err:.2e} of its largest value"


def _check_compiled(net, inputs, thicknesses):
    """Compile with fullgraph=True; outputs and gradients (input and every parameter) of the
    compiled net equal eager mode's, for each thickness in turn (new values, same graph)."""
    params = [p for p in net.parameters() if p.requires_grad]
    torch._dynamo.reset()
    compiled = torch.compile(net, fullgraph=True)
    for t in thicknesses:
        x = inputs.clone().requires_grad_()
        y = net(x, t)
        weight = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
        want = torch.autograd.grad((y * weight).sum(), [x, *params])
        y_c = compiled(x, t)
        got = torch.autograd.grad((y_c * weight).sum(), [x, *params])
        _close(y_c, y, "output")
        for i, (g, w) in enumerate(zip(got, want)):
            _close(g, w, "input gradient" if i == 0 else f"gradient of parameter {i - 1}")


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def test_converted_resnet18_compiles_without_graph_breaks(float64):
    """The call that failed before ("Could not guard on data-dependent expression Eq(u0, 1)",
    from the thickness check): a converted torchvision ResNet-18, 3 slices of 32 x 32."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = convert(torchvision.models.resnet18(), conv="alignshift", in_channels=1)
    x = torch.randn(2, 1, 3, 32, 32)
    _check_compiled(net, x, [torch.tensor([1.25, 5.0]), torch.tensor([5.0, 0.5])])


BACKBONES = [
    ("alignshift", 3, False), ("alignshift", 7, True), ("tsm", 3, False), ("tsm", 7, False),
    ("a3d", 7, False), ("plain", 3, False), ("2.5d", 3, False), ("2.5d", 7, False),
]


@pytest.mark.slow
@pytest.mark.parametrize("conv, slices, checkpointed", BACKBONES,
                         ids=[f"{c}-{d}{'-checkpointed' if m else ''}" for c, d, m in BACKBONES])
def test_backbone_compiles_without_graph_breaks(conv, slices, checkpointed, float64):
    """The detector's truncated DenseNet-121 backbones at 32 x 32 (``checkpointed``: the dense
    layers recomputed in backward, ``memory_efficient=True``)."""
    torch.manual_seed(0)
    if conv == "2.5d":
        net = DenseNetBackbone25D(num_slices=slices, memory_efficient=checkpointed)
    else:
        net = DenseNetBackbone3D(conv, num_slices=slices, memory_efficient=checkpointed)
    x = torch.randn(2, slices, 32, 32)
    _check_compiled(net, x, [torch.tensor([1.25, 5.0])])
