"""The Triton depth-shift kernels against the torch-op shift (the formula itself: test_ops.py).

With a GPU they run natively on CUDA tensors. Without one they run under Triton's interpreter on
CPU tensors, in a child process, because ``TRITON_INTERPRET`` must be set before the kernels are
defined.
"""

import functools
import itertools
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton")

from alignshift.ops import align_shift, shift_backend, shift_conv3d, tsm_shift  # noqa: E402


def _both(fn):
    with shift_backend("torch"):
        want = fn()
    with shift_backend("triton"):
        got = fn()
    return got, want


def _check_shift(device: str) -> None:
    gen = torch.Generator().manual_seed(0)
    for depth, padding, n_fold, channels in itertools.product(
            (1, 2, 3, 7), ("zeros", "replicate"), (4, 8), (8, 17)):
        x = torch.randn(3, channels, depth, 3, 5, generator=gen, dtype=torch.float64).to(device)
        t = torch.tensor([0.8, 2.0, 5.0], dtype=torch.float64)
        for fn in (functools.partial(align_shift, x, t, n_fold=n_fold, padding=padding),
                   functools.partial(tsm_shift, x, n_fold=n_fold, padding=padding)):
            got, want = _both(fn)
            torch.testing.assert_close(got, want, rtol=0, atol=1e-14)
    # a non-contiguous input is shifted as its values say
    x = torch.randn(2, 16, 5, 4, 4, generator=gen).to(device)
    xc = x.to(memory_format=torch.channels_last_3d)
    got, want = _both(lambda: align_shift(xc, [1.0, 5.0]))
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def _check_gradients(device: str) -> None:
    t = torch.tensor([0.8, 5.0], dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    with shift_backend("triton"):
        for depth, padding in itertools.product((1, 2, 3, 7), ("zeros", "replicate")):
            # the adjoint's defining identity <shift(x), g> = <x, shift^T(g)>, for every config
            x = torch.randn(2, 16, depth, 2, 3, generator=gen, dtype=torch.float64).to(device)
            g = torch.randn(2, 16, depth, 2, 3, generator=gen, dtype=torch.float64).to(device)
            xr = x.clone().requires_grad_()
            y = align_shift(xr, t, n_fold=4, padding=padding)
            (gx,) = torch.autograd.grad(y, xr, g)
            torch.testing.assert_close((y * g).sum(), (x * gx).sum(), rtol=1e-12, atol=1e-12)
        # full Jacobian checks (slow under the interpreter: a launch per perturbed element)
        x = torch.randn(2, 4, 3, 1, 2, dtype=torch.float64, device=device, requires_grad=True)
        for padding in ("zeros", "replicate"):
            assert torch.autograd.gradcheck(
                functools.partial(align_shift, thickness=t, n_fold=4, padding=padding), (x,))
        if device == "cuda":  # double backward reuses the two kernels checked above
            assert torch.autograd.gradgradcheck(
                functools.partial(align_shift, thickness=t, n_fold=4), (x,))


def _check_fused_conv(device: str) -> None:
    gen = torch.Generator().manual_seed(1)
    alpha = torch.tensor([0.0, 0.6], device=device)
    for k, padding in itertools.product((1, 3), ("zeros", "replicate")):
        x = torch.randn(2, 16, 7, 6, 6, generator=gen).to(device)
        w = torch.randn(8, 16, 1, k, k, generator=gen).to(device)
        b = torch.randn(8, generator=gen).to(device)

        def run(x=x, w=w, b=b, k=k, padding=padding):
            xs, ws, bs = (v.clone().requires_grad_() for v in (x, w, b))
            y = shift_conv3d(xs, ws, bs, alpha, 8, padding, (1, 1, 1), (0, k // 2, k // 2), (1, 1, 1), 1)
            (y * torch.linspace(-1, 1, y.numel(), device=device).view_as(y)).sum().backward()
            return y.detach(), xs.grad, ws.grad, bs.grad

        got, want = _both(run)
        for g, w_ in zip(got, want):
            torch.testing.assert_close(g, w_, rtol=1e-4, atol=1e-4)


def _check_custom_ops(device: str) -> None:
    """The ops ``torch.compile`` calls take the backend as an argument: forward and backward."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 16, 5, 4, 4, generator=gen).to(device)
    w = torch.randn(8, 16, 1, 3, 3, generator=gen).to(device)
    a = torch.tensor([0.0, 0.6], device=device).view(2, 1, 1, 1, 1)
    results = {}
    for backend in ("torch", "triton"):
        xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
        y = torch.ops.alignshift.shift_conv3d(xs, ws, None, a, 2, True, [1, 1, 1], [0, 1, 1],
                                              [1, 1, 1], 1, backend)
        z = torch.ops.alignshift.depth_shift(xs, a, 2, False, backend)
        (y.sin().sum() + z.cos().sum()).backward()
        results[backend] = (y.detach(), z.detach(), xs.grad, ws.grad)
    for got, want in zip(results["triton"], results["torch"]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def _check_half(device: str) -> None:
    x = torch.randn(2, 32, 7, 8, 8, device=device)
    for dtype in (torch.float16, torch.bfloat16):
        got, want = _both(lambda dtype=dtype: align_shift(x.to(dtype), [1.0, 5.0]))
        assert got.dtype == dtype
        torch.testing.assert_close(got.float(), want.float(), rtol=1e-2, atol=1e-2)


def _check_backbone(device: str) -> None:
    """The AlignShift backbone, checkpointed, in float32 and under bf16 autocast."""
    from alignshift.models import DenseNetBackbone3D

    torch.manual_seed(3)
    net = DenseNetBackbone3D("alignshift", num_slices=3, memory_efficient=True).to(device).eval()
    x = torch.randn(2, 3, 64, 64, device=device)
    t = torch.tensor([1.25, 5.0])
    for autocast in (False, True):
        def run(autocast=autocast):
            net.zero_grad(set_to_none=True)
            with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
                y = net(x.requires_grad_(), t)
            y.float().square().mean().backward()
            return y.detach().float(), net.body.model.features.conv0.weight.grad.clone()

        # TF32 would round the backends' last-bit differences to 1e-3 and pass them on
        with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True,
                                        allow_tf32=False):
            (y1, g1), (y0, g0) = _both(run)
        tol = 5e-2 if autocast else 1e-4
        torch.testing.assert_close(y1, y0, rtol=tol, atol=tol)
        torch.testing.assert_close(g1, g0, rtol=tol, atol=tol * g0.abs().max().item())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("check", [_check_shift, _check_gradients, _check_fused_conv,
                                   _check_custom_ops, _check_half, _check_backbone])
def test_triton_kernels_cuda(check):
    check("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="runs natively on the CUDA device instead")
def test_triton_kernels_interpreted_on_cpu():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "all Triton checks passed" in proc.stdout


def test_auto_backend_on_cpu_uses_torch_ops():
    from alignshift.ops import _kernels_for

    assert _kernels_for(torch.zeros(1, 8, 2, 1, 1)) is None
    with pytest.raises(ValueError, match="shift backend must be one of"):
        with shift_backend("cuda"):
            pass
    x, a = torch.zeros(2, 8, 3, 2, 2), torch.zeros(2, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="shift backend must be one of .* got 'trtion'"):
        torch.ops.alignshift.depth_shift(x, a, 1, True, "trtion")  # the ops take it as a string


if __name__ == "__main__":
    for fn in (_check_shift, _check_gradients, _check_fused_conv, _check_custom_ops):
        fn("cpu")
    print("all Triton checks passed")
