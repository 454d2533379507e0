"""``torch.library.opcheck`` on every ``torch.ops.alignshift`` operator.

opcheck runs each op through its schema check (no hidden mutation or aliasing), its fake
(shape-only) version against the real one, its autograd registration, and AOT dispatch with
dynamic shapes (the outputs and gradients of the traced op against eager). The shapes are the
detector's: 3 and 7 slices, odd channel counts (a fold that does not divide the channels), a
different shift weight for every sample, and ``a=None`` (TSM: all zero).
"""

import itertools
import os
import subprocess
import sys

import pytest
import torch

import alignshift.ops  # noqa: F401  (registers torch.ops.alignshift)

OPS = torch.ops.alignshift
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _weights(kind, batch, dtype):
    if kind == "none":
        return None
    # one weight per sample, float32 whatever the features are (float64 for float64 features)
    a = torch.tensor([0.0, 0.6, 0.25, 1.0][:batch], dtype=alignshift.ops.alpha_dtype(dtype))
    return a.view(batch, 1, 1, 1, 1) if kind == "5d" else a


def _cases(depth, channels, dtype, layout, kind, backend, convs=True):
    """(name, op, args) for every op at one shape."""
    gen = torch.Generator().manual_seed(depth * 100 + channels)
    batch = 3
    x = torch.randn(batch, channels, depth, 5, 6, generator=gen).to(dtype)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last_3d)
    x.requires_grad_()
    a = _weights(kind, batch, dtype)
    fold = channels // 4  # channels 13 -> fold 3: 6 shifted, 7 passed through
    cases = []
    for replicate in (True, False):
        cases.append(("depth_shift", OPS.depth_shift.default, (x, a, fold, replicate, backend)))
        cases.append(("depth_shift_adjoint", OPS.depth_shift_adjoint.default,
                      (x, a, fold, replicate, backend)))
    if not convs:
        return cases
    out = 5
    w = torch.randn(out, channels, 1, 3, 3, generator=gen).to(dtype).requires_grad_()
    b = torch.randn(out, generator=gen).to(dtype).requires_grad_()
    wg = torch.randn(channels, 1, 1, 3, 3, generator=gen).to(dtype).requires_grad_()  # depthwise
    conv_args = [
        (w, b, [1, 1, 1], [0, 1, 1], [1, 1, 1], 1),
        (w, None, [1, 2, 2], [0, 0, 0], [1, 1, 1], 1),
        (wg, None, [1, 1, 1], [0, 2, 2], [1, 2, 2], channels),
    ]
    for (weight, bias, stride, padding, dilation, groups), replicate in itertools.product(
            conv_args, (True, False)):
        args = (x, weight, bias, a, fold, replicate, stride, padding, dilation, groups, backend)
        cases.append(("shift_conv3d", OPS.shift_conv3d.default, args))
    g = torch.randn(batch, out, depth, 5, 6, generator=gen).to(dtype)
    for need in ([True, True, True], [True, False, False], [False, True, True], [False, True, False]):
        args = (g, x.detach(), w.detach(), a, fold, True, [1, 1, 1], [0, 1, 1], [1, 1, 1], 1,
                backend, need)
        cases.append(("shift_conv3d_backward", OPS.shift_conv3d_backward.default, args))
    return cases


def _check_all(cases):
    for name, op, args in cases:
        try:
            torch.library.opcheck(op, args)
        except Exception as e:  # name the op and the case that failed
            shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else a for a in args]
            raise AssertionError(f"opcheck failed for {name}{shapes}: {e}") from e


@pytest.mark.parametrize("depth", [3, 7])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_opcheck_torch_ops(depth, dtype, layout):
    """The torch-op backend (every CPU run), per-sample weights: all four ops and the backward op."""
    _check_all(_cases(depth, 13, dtype, layout, "1d", "auto"))


@pytest.mark.parametrize("kind", ["none", "5d"])
def test_opcheck_tsm_and_5d_weights(kind):
    """TSM's ``a=None`` (no weights tensor) and weights shaped (B, 1, 1, 1, 1) as earlier callers
    pass them, at 7 slices and 9 channels (fold 2, 5 channels unshifted)."""
    _check_all(_cases(7, 9, torch.float32, "contiguous", kind, "torch"))


_TRITON_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
import torch
from test_opcheck import _cases, _check_all

for depth, kind in ((3, "1d"), (7, "none")):
    _check_all(_cases(depth, 13, torch.float32, "contiguous", kind, "triton"))
print("opcheck triton ok")
"""


def test_opcheck_triton_backend_interpreted():
    """The same ops with ``backend='triton'`` (the CUDA path), run by Triton's interpreter on CPU
    tensors (``TRITON_INTERPRET=1``, which has to be set before Triton is imported: a child
    process). Shift and adjoint, and the fused conv with its backward op."""
    pytest.importorskip("triton")
    if torch.cuda.is_available():
        pytest.skip("on a CUDA machine tests/alignshift/test_shift_triton.py runs the real kernels")
    script = _TRITON_SCRIPT.format(root=ROOT, tests=os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "opcheck triton ok" in proc.stdout


def test_weights_of_the_wrong_batch_size_are_refused():
    from alignshift.ops import depth_shift

    with pytest.raises(ValueError, match="hold 3 values for a batch of 2"):
        depth_shift(torch.randn(2, 8, 3, 2, 2), torch.tensor([0.0, 0.5, 1.0]))


def test_thickness_check_keeps_the_graph_whole():
    """``torch.compile(fullgraph=True)`` of the thickness-aware shift: the value check runs inside
    the graph, and bad values still raise when the compiled code runs."""
    from alignshift.ops import align_shift

    torch._dynamo.reset()
    fn = torch.compile(lambda x, t: align_shift(x, t), backend="aot_eager", fullgraph=True)
    x = torch.randn(2, 8, 3, 2, 2)
    t = torch.tensor([1.25, 5.0])
    torch.testing.assert_close(fn(x, t), align_shift(x, t))
    for bad in ([1.0, float("nan")], [0.0, 1.0], [-2.0, 3.0]):
        with pytest.raises(RuntimeError, match="thickness must be > 0 mm"):
            fn(x, torch.tensor(bad))
    with pytest.raises(Exception, match=r"shape \(2,\)"):  # shapes are checked while tracing
        fn(x, torch.tensor([1.0, 2.0, 3.0]))
