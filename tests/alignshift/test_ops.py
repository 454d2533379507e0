import math

import pytest
import torch

from alignshift.ops import align_shift, shift_alpha, tsm_shift


def reference_shift(x, thickness, ref=2.0, n_fold=8, padding="replicate", tsm=False):
    """The formula, written slice by slice with Python loops."""
    B, C, D, H, W = x.shape
    fold = C // n_fold
    out = x.clone()
    for b in range(B):
        a = 0.0 if tsm else 1.0 - min(max(ref / float(thickness[b]), 0.0), 1.0)
        for d in range(D):
            nxt = x[b, :fold, d + 1] if d + 1 < D else (
                x[b, :fold, d] if padding == "replicate" else torch.zeros_like(x[b, :fold, d]))
            prv = x[b, fold:2 * fold, d - 1] if d >= 1 else (
                x[b, fold:2 * fold, d] if padding == "replicate"
                else torch.zeros_like(x[b, fold:2 * fold, d]))
            out[b, :fold, d] = a * x[b, :fold, d] + (1 - a) * nxt
            out[b, fold:2 * fold, d] = a * x[b, fold:2 * fold, d] + (1 - a) * prv
    return out


@pytest.mark.parametrize("padding", ["zeros", "replicate"])
@pytest.mark.parametrize("n_fold", [4, 8])
@pytest.mark.parametrize("D", range(1, 10))
def test_align_shift_matches_formula(padding, n_fold, D):
    g = torch.Generator().manual_seed(D * 10 + n_fold)
    x = torch.randn(3, 16, D, 3, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0.5, 2.7, 10.0], dtype=torch.float64)
    got = align_shift(x, t, n_fold=n_fold, padding=padding)
    want = reference_shift(x, t, n_fold=n_fold, padding=padding)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-14)


@pytest.mark.parametrize("padding", ["zeros", "replicate"])
@pytest.mark.parametrize("D", [1, 2, 5, 9])
def test_tsm_shift_matches_formula(padding, D):
    x = torch.randn(2, 24, D, 2, 2, dtype=torch.float64)
    got = tsm_shift(x, n_fold=8, padding=padding)
    want = reference_shift(x, [1.0, 1.0], n_fold=8, padding=padding, tsm=True)
    assert torch.equal(got, want)


def test_random_thickness_range_float32():
    x = torch.randn(8, 32, 7, 5, 5)
    t = torch.empty(8).uniform_(0.5, 10.0)
    torch.testing.assert_close(align_shift(x, t), reference_shift(x, t), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("padding", ["zeros", "replicate"])
@pytest.mark.parametrize("D", [1, 2, 3, 7])
def test_gradcheck(padding, D):
    x = torch.randn(3, 8, D, 2, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.8, 2.5, 5.0], dtype=torch.float64)  # mixed thin and thick
    assert torch.autograd.gradcheck(lambda v: align_shift(v, t, n_fold=4, padding=padding), (x,))
    assert torch.autograd.gradcheck(lambda v: tsm_shift(v, n_fold=4, padding=padding), (x,))
    assert torch.autograd.gradgradcheck(lambda v: align_shift(v, t, n_fold=4, padding=padding), (x,))


def test_no_mutation_and_safe_after_inplace_relu():
    x = torch.randn(2, 16, 5, 4, 4, requires_grad=True)
    conv = torch.nn.Conv3d(16, 16, 1)
    y = torch.relu_(conv(x))  # ReLU saves its output for backward
    before = y.detach().clone()
    out = align_shift(y, torch.tensor([1.0, 5.0]))
    out2 = tsm_shift(y)
    assert torch.equal(y.detach(), before)
    (out.sum() + out2.sum() + y.sum()).backward()  # a mutated y would fail autograd's version check
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_thickness_semantics():
    x = torch.randn(2, 16, 4, 2, 2)
    # inf: no shift; thin slices (<= ref): a whole-slice shift, same as TSM with that padding
    assert torch.equal(align_shift(x, torch.tensor([math.inf, math.inf])), x)
    torch.testing.assert_close(align_shift(x, torch.tensor([1.0, 2.0])), tsm_shift(x, padding="replicate"))
    # (B, 1) and python scalars are accepted
    torch.testing.assert_close(align_shift(x, torch.tensor([[5.0], [5.0]])), align_shift(x, 5.0))
    assert torch.allclose(shift_alpha(torch.tensor([1.0, 2.0, 4.0, 5.0])), torch.tensor([0.0, 0.0, 0.5, 0.6]))


@pytest.mark.parametrize("bad, match", [
    (torch.tensor([1.0, float("nan")]), "nan"),
    (torch.tensor([0.0, 1.0]), "0.0"),
    (torch.tensor([-2.0, 1.0]), "-2.0"),
    (torch.tensor([1.0, 2.0, 3.0]), r"\(2,\)"),
])
def test_bad_thickness(bad, match):
    with pytest.raises(ValueError, match=match):
        align_shift(torch.randn(2, 8, 3, 2, 2), bad)


def test_bad_shapes():
    with pytest.raises(ValueError, match="B, C, D, H, W"):
        tsm_shift(torch.randn(2, 8, 3, 3))
    with pytest.raises(ValueError, match="padding"):
        tsm_shift(torch.randn(2, 8, 3, 3, 3), padding="reflect")


def test_slice_thickness_validates_once_and_caches_weights():
    from alignshift.ops import SliceThickness

    st = SliceThickness(torch.tensor([[1.0], [5.0]]), 2)
    assert len(st) == 2 and st.mm.dtype == torch.float64
    a = st.alpha(2.0, torch.device("cpu"), torch.float32)
    assert a is st.alpha(2.0, torch.device("cpu"), torch.float32)  # computed once per key
    torch.testing.assert_close(a, torch.tensor([0.0, 0.6]))
    torch.testing.assert_close(st.alpha(4.0, torch.device("cpu"), torch.float64),
                               torch.tensor([0.0, 0.2], dtype=torch.float64))
    with pytest.raises(ValueError, match="-1.0"):
        SliceThickness([2.0, -1.0], 2)


def test_prepared_thickness_gives_the_same_convolution():
    from alignshift.nn import AlignShiftConv
    from alignshift.ops import SliceThickness

    conv = AlignShiftConv(16, 8, 3, padding=1)
    x = torch.randn(2, 16, 5, 6, 6)
    t = torch.tensor([1.25, 5.0])
    torch.testing.assert_close(conv(x, SliceThickness(t, 2)), conv(x, t))
    with pytest.raises(ValueError, match="holds 3 values for a batch of 2"):
        conv(x, SliceThickness([1.0, 2.0, 3.0], 3))


def test_align_and_depth_shift_accept_a_slice_thickness():
    from alignshift.ops import SliceThickness, depth_shift

    x = torch.randn(2, 8, 5, 3, 3)
    t = SliceThickness(torch.tensor([1.0, 5.0]), 2)
    want = align_shift(x, torch.tensor([1.0, 5.0]))
    torch.testing.assert_close(align_shift(x, t), want)
    torch.testing.assert_close(depth_shift(x, t), want)  # weights for ref_thickness=2 mm
    torch.testing.assert_close(depth_shift(x, t, ref_thickness=5.0),
                               align_shift(x, [1.0, 5.0], ref_thickness=5.0))
    with pytest.raises(ValueError, match="holds 2 values for a batch of 3"):
        align_shift(torch.randn(3, 8, 5, 3, 3), t)


def test_too_few_channels_to_shift_warns():
    x = torch.randn(1, 4, 5, 3, 3)
    with pytest.warns(UserWarning, match="4 channels and n_fold=8.*nothing is shifted"):
        out = align_shift(x, [1.0])
    torch.testing.assert_close(out, x)
    with pytest.warns(UserWarning, match="nothing is shifted"):
        tsm_shift(x)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        align_shift(torch.randn(1, 8, 5, 3, 3), [1.0])  # enough channels: silent
