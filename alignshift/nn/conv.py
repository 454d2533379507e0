"""1xKxK 3D convolutions that keep 2D-shaped weights, with optional depth mixing before them.

Every class takes the ``nn.Conv2d`` constructor arguments, stores ``weight`` as
``(out, in / groups, K, K)`` exactly like ``nn.Conv2d`` (so 2D checkpoints load unchanged) and
runs on ``x: (B, C_in, D, H, W) -> (B, C_out, D, H', W')``; nothing is mixed across slices by the
convolution itself.

Thickness is passed explicitly as ``forward(x, thickness)``. A converted network whose blocks call
``conv(x)`` with one argument gets it from :meth:`Conv1xKxK.bind_thickness`, set per forward by
the converter's wrapper on its own convs only (instance state, never global).
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import SliceThickness, alpha_dtype, depth_shift, shift_conv3d

__all__ = ["Conv1xKxK", "AlignShiftConv", "TSMConv", "A3DConv"]

_PairArg = Union[int, Tuple[int, int]]
# (B,) mm as a tensor, or already validated (and cached on the device) as a SliceThickness
ThicknessArg = Optional[Union[Tensor, SliceThickness]]


class Conv1xKxK(nn.Conv2d):
    """Plain 1xKxK 3D convolution: a 2D convolution applied to every slice.

    Subclasses ``nn.Conv2d`` for its parameters, initialisation and ``state_dict`` layout only;
    :meth:`forward` takes 5D input. ``enable_shift`` exists on every conv of this family so the
    converter can keep the stem plain; here it has nothing to switch.
    """

    shifts = False  # True for the convs whose depth mixing is a depth shift (fused with the conv)

    def __init__(self, *args, enable_shift: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.enable_shift = enable_shift
        self._bound_thickness: ThicknessArg = None

    def bind_thickness(self, thickness: ThicknessArg) -> None:
        """Thickness for calls that do not pass it (``conv(x)`` inside converted blocks)."""
        self._bound_thickness = thickness

    def mix_depth(self, x: Tensor, thickness: ThicknessArg) -> Tensor:
        """Depth mixing applied before the convolution: identity for the plain conv."""
        return x

    def shift_alpha(self, x: Tensor, thickness: ThicknessArg) -> Optional[Tensor]:
        """For shift convs: (B,) weight each sample keeps on its own slice (float32, or float64
        for float64 input), None when it is 0 for every sample (TSM)."""
        return None

    def _fused_padding(self) -> Optional[Tuple[int, int, int]]:
        """Explicit (0, ph, pw) when the fused shift+conv kernel applies, else None."""
        if self.padding_mode != "zeros":
            return None
        if isinstance(self.padding, str):
            if self.padding == "valid":
                return (0, 0, 0)
            if any(k % 2 == 0 for k in self.kernel_size) or self.stride != (1, 1):
                return None
            return (0, *(d * (k - 1) // 2 for d, k in zip(self.dilation, self.kernel_size)))
        return (0, *self.padding)

    def conv1xkxk(self, x: Tensor) -> Tensor:
        if x.dim() != 5:
            raise ValueError(
                f"{type(self).__name__} expects x of shape (B, C, D, H, W), got {tuple(x.shape)}")
        sh, sw = self.stride
        dh, dw = self.dilation
        weight = self.weight.unsqueeze(2)
        if self.padding_mode != "zeros":
            ph, pw = self._reversed_padding_repeated_twice[0], self._reversed_padding_repeated_twice[2]
            x = F.pad(x, (pw, pw, ph, ph, 0, 0), mode=self.padding_mode)
            padding = (0, 0, 0)
        elif isinstance(self.padding, str):
            if self.padding == "same" and not (sh == sw == 1):
                raise ValueError("padding='same' needs stride 1")
            padding = self.padding
        else:
            padding = (0, *self.padding)
        return F.conv3d(x, weight, self.bias, (1, sh, sw), padding, (1, dh, dw), self.groups)

    def forward(self, x: Tensor, thickness: ThicknessArg = None) -> Tensor:  # type: ignore[override]
        """x: (B, C_in, D, H, W), thickness: (B,) mm or None -> (B, C_out, D, H', W')."""
        if thickness is None:
            thickness = self._bound_thickness
        if self.enable_shift:
            padding = self._fused_padding() if self.shifts else None
            if padding is not None and x.dim() == 5:
                # one op: saves x rather than its shifted copy (memory of a plain conv)
                return shift_conv3d(x, self.weight.unsqueeze(2), self.bias,
                                    self.shift_alpha(x, thickness), self.n_fold,
                                    self.shift_padding, (1, *self.stride), padding,
                                    (1, *self.dilation), self.groups)
            x = self.mix_depth(x, thickness)
        return self.conv1xkxk(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.enable_shift else ", enable_shift=False")



class TSMConv(Conv1xKxK):
    """TSM shift over depth (2 / n_fold of the channels by one whole slice), then a 1xKxK conv."""

    shifts = True

    def __init__(self, *args, n_fold: int = 8, shift_padding: str = "zeros", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.n_fold, self.shift_padding = n_fold, shift_padding

    def mix_depth(self, x: Tensor, thickness: ThicknessArg) -> Tensor:
        return depth_shift(x, self.shift_alpha(x, thickness), self.n_fold, self.shift_padding)

    def shift_alpha(self, x: Tensor, thickness: ThicknessArg) -> Optional[Tensor]:
        return None  # a = 0 for every sample: the shift needs no weights, nothing is allocated

    def extra_repr(self) -> str:
        return super().extra_repr() + f", n_fold={self.n_fold}, shift_padding={self.shift_padding!r}"


class AlignShiftConv(Conv1xKxK):
    """Thickness-aware shift (AlignShift) by ``ref_thickness`` mm, then a 1xKxK conv.

    ``forward(x, thickness)`` needs thickness ``(B,)`` in mm, passed or bound.
    """

    shifts = True

    def __init__(self, *args, n_fold: int = 8, ref_thickness: float = 2.0,
                 shift_padding: str = "replicate", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.n_fold, self.ref_thickness, self.shift_padding = n_fold, ref_thickness, shift_padding

    def mix_depth(self, x: Tensor, thickness: ThicknessArg) -> Tensor:
        return depth_shift(x, self.shift_alpha(x, thickness), self.n_fold, self.shift_padding)

    def shift_alpha(self, x: Tensor, thickness: ThicknessArg) -> Optional[Tensor]:
        if thickness is None:
            raise ValueError(
                "AlignShiftConv needs the slice thickness: call forward(x, thickness) with a (B,) "
                "tensor in mm, or the converted model's forward(x, thickness)")
        return SliceThickness.of(thickness, x.shape[0]).alpha(self.ref_thickness, x.device,
                                                              alpha_dtype(x.dtype))

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", n_fold={self.n_fold}, ref_thickness={self.ref_thickness}"
                f", shift_padding={self.shift_padding!r}")


class A3DConv(Conv1xKxK):
    """Learnable per-channel D x D depth mixing (A3D, MICCAI 2021), then a 1xKxK conv.

    ``depth_mix: (C_in, D, D)`` starts at the identity plus ``init_noise`` so the converted
    network initially behaves like the plain 1xKxK one. It needs the number of slices ``D``.
    Built with ``enable_shift=False`` it has no ``depth_mix`` (no parameter that never gets a
    gradient, which DistributedDataParallel would reject).
    """

    def __init__(self, *args, num_slices: int = 7, init_noise: float = 1e-3, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if num_slices < 1:
            raise ValueError(f"num_slices must be >= 1, got {num_slices}")
        self.num_slices = num_slices
        if self.enable_shift:
            eye = torch.eye(num_slices).expand(self.in_channels, num_slices, num_slices).clone()
            self.depth_mix = nn.Parameter(eye + init_noise * torch.randn_like(eye))
        else:
            self.register_parameter("depth_mix", None)

    def mix_depth(self, x: Tensor, thickness: ThicknessArg) -> Tensor:
        if self.depth_mix is None:
            raise RuntimeError("this A3DConv was built with enable_shift=False and has no depth_mix "
                               "to apply; build it with enable_shift=True to learn one")
        if x.shape[2] != self.num_slices:
            raise ValueError(
                f"A3DConv was built for D={self.num_slices} slices, got x of shape {tuple(x.shape)}")
        # out[b, c, d] = sum_e depth_mix[c, d, e] * x[b, c, e]
        return torch.einsum("cde,bcehw->bcdhw", self.depth_mix.to(x.dtype), x)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_slices={self.num_slices}"
