"""load_multislice throughput vs decoding the same PNGs with cv2, side by side.

    python benchmarks/bench_data.py [--images 12] [--repeats 9] [--warmup 2]

Writes a small synthetic release of 512x512 slices to a temporary folder, then for every key
slice times ``load_multislice`` (7 slices, 2 mm) against ``cv2.imread`` of exactly the PNG files
it reads, counted two ways: each distinct file once (the strict baseline: the cache inside
``load_multislice`` earns nothing) and every file each output channel mixes (what a loader without
that cache decodes). Ratios are medians over rounds of decode time / load time, with quartiles.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import cv2
import numpy as np

from alignshift.data import load_multislice, make_synthetic_deeplesion, multislice_plan, parse_dl_info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=9, help="measured rounds")
    ap.add_argument("--warmup", type=int, default=2, help="unmeasured rounds first")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = make_synthetic_deeplesion(os.path.join(tmp, "dl"), args.images, 512, seed=1,
                                             progress=False)
        image_dir = os.path.join(os.path.dirname(csv_path), "Images_png")
        recs = parse_dl_info(csv_path)
        for interpolate in (True, False):
            distinct, per_channel = [], []
            for r in recs:
                paths, mix = multislice_plan(image_dir, r.file_name, r.thickness, 7, 2.0, interpolate)
                distinct.append(paths)  # what load_multislice decodes, each file once
                # what a loader without the cache reads: every slice each channel mixes
                per_channel.append([paths[k] for c in range(mix.shape[1])
                                    for k in np.flatnonzero(mix[:, c])])

            def load(i, interpolate=interpolate):
                r = recs[i]
                load_multislice(image_dir, r.file_name, r.thickness, 7, 2.0, interpolate)

            def decode(files):
                for p in files:
                    cv2.imread(p, cv2.IMREAD_UNCHANGED)

            sides = [load, lambda i, d=distinct: decode(d[i]), lambda i, d=per_channel: decode(d[i])]
            # interleaved per sample in a rotating order, so that drift and cache state hit all
            # sides alike; unmeasured rounds first warm the page cache and the allocator
            rounds = []
            for rnd in range(args.warmup + args.repeats):
                t = [0.0] * len(sides)
                for i in range(len(recs)):
                    for j in range(len(sides)):
                        s = (i + rnd + j) % len(sides)
                        t0 = time.perf_counter()
                        sides[s](i)
                        t[s] += time.perf_counter() - t0
                if rnd >= args.warmup:
                    rounds.append(t)
            n = len(recs) * args.repeats
            total = [sum(t[s] for t in rounds) for s in range(len(sides))]
            print(f"interpolate={interpolate}: {len(recs)} samples x 7 slices of 512x512 | "
                  f"load_multislice {n / total[0]:.1f} samples/s")
            for s, name, files in ((1, "each distinct PNG once", distinct),
                                   (2, "every PNG each channel mixes", per_channel)):
                q1, med, q3 = statistics.quantiles([t[s] / t[0] for t in rounds], n=4)
                print(f"  vs cv2.imread of {name} ({sum(map(len, files))} PNGs): "
                      f"{n / total[s]:.1f} samples/s, throughput ratio {med:.2f}x "
                      f"(quartiles {q1:.2f}-{q3:.2f} over {args.repeats} rounds; target >= 0.9x)")


if __name__ == "__main__":
    main()
