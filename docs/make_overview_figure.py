#!/usr/bin/env python
"""Draw docs/overview.png: the README's figure, from the synthetic data and the real operator.

    python docs/make_overview_figure.py [--out docs/overview.png]

Left, middle: the key slice of a thin and of a thick synthetic series (the demo's data, written in
the DeepLesion release format), windowed as the detector sees it, with the lesion boxes. Right:
how much of its neighbour slice each shifted channel takes, measured by calling
``alignshift.align_shift`` and ``alignshift.tsm_shift`` on a ramp. Takes a few seconds on a CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def neighbour_weight(thickness_mm, shift) -> list:
    """Weight on slice d+1 in channel 0 at slice d, for each thickness (a ramp input: x[d] = d)."""
    import torch

    t = torch.as_tensor(thickness_mm, dtype=torch.float32)
    x = torch.arange(3, dtype=torch.float32).view(1, 1, 3, 1, 1).expand(len(t), 8, 3, 1, 1)
    return (shift(x.contiguous(), t)[:, 0, 1, 0, 0] - 1.0).tolist()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "overview.png"))
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from alignshift import align_shift, tsm_shift
    from alignshift.data import load_multislice, parse_dl_info, window

    with tempfile.TemporaryDirectory() as tmp:
        from alignshift.data import make_synthetic_deeplesion

        csv_path = make_synthetic_deeplesion(os.path.join(tmp, "DeepLesion"), num_images=8,
                                             image_size=128, seed=0, progress=False)
        records = parse_dl_info(csv_path)
        image_dir = os.path.join(tmp, "DeepLesion", "Images_png")
        thin = next(r for r in records if r.thickness <= 2.0)
        thick = next(r for r in records if r.thickness > 2.0)
        slices = {r.file_name: window(load_multislice(image_dir, r.file_name, r.thickness, 3))
                  for r in (thin, thick)}

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), dpi=100,
                             gridspec_kw=dict(width_ratios=[1, 1, 1.35]))
    for ax, rec, label in ((axes[0], thin, "thin"), (axes[1], thick, "thick")):
        ax.imshow(slices[rec.file_name][:, :, 1], cmap="gray", vmin=0, vmax=255)
        for x1, y1, x2, y2 in rec.boxes:
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="lime", lw=1.2))
        ax.set_title(f"{label} series, {rec.thickness:g} mm slices", fontsize=10)
        ax.axis("off")

    t = np.linspace(0.5, 8, 76)
    ax = axes[2]
    ax.plot(t, neighbour_weight(t, align_shift), "b-", label="AlignShift (shift spans 2 mm)")
    ax.plot(t, neighbour_weight(t, lambda x, _t: tsm_shift(x)), "r--", label="TSM (whole slice)")
    ax.axvline(2.0, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("thickness: slice interval of the series (mm)")
    ax.set_ylabel("weight of the neighbour slice")
    ax.set_ylim(-0.05, 1.1)
    ax.set_title("what a shifted channel mixes in", fontsize=10)
    ax.legend(loc="lower left", fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    tmp_out = args.out + ".tmp.png"
    fig.savefig(tmp_out)
    plt.close(fig)
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
