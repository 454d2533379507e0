"""load_multislice throughput vs decoding the same PNGs with cv2, side by side.

    python benchmarks/bench_data.py [--images 12] [--repeats 5]

Writes a small synthetic release of 512x512 slices to a temporary folder, then for every key
slice times ``load_multislice`` (7 slices, 2 mm) against ``cv2.imread`` of exactly the PNG files
it reads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import cv2

from alignshift.data import load_multislice, make_synthetic_deeplesion, multislice_plan, parse_dl_info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = make_synthetic_deeplesion(os.path.join(tmp, "dl"), args.images, 512, seed=1,
                                             progress=False)
        image_dir = os.path.join(os.path.dirname(csv_path), "Images_png")
        recs = parse_dl_info(csv_path)
        for interpolate in (True, False):
            # exactly the PNGs load_multislice decodes (its own plan)
            plans = [multislice_plan(image_dir, r.file_name, r.thickness, 7, 2.0, interpolate)[0]
                     for r in recs]

            def load(interpolate=interpolate):
                for r in recs:
                    load_multislice(image_dir, r.file_name, r.thickness, 7, 2.0, interpolate)

            def raw(plans=plans):
                for files in plans:
                    for p in files:
                        cv2.imread(p, cv2.IMREAD_UNCHANGED)

            load(), raw()  # warm the page cache
            t_load, t_raw = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                load()
                t_load.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                raw()
                t_raw.append(time.perf_counter() - t0)
            tl, tr = statistics.median(t_load), statistics.median(t_raw)
            n_png = sum(len(p) for p in plans)
            print(f"interpolate={interpolate}: {len(recs)} samples x 7 slices ({n_png} PNGs of 512x512)"
                  f" | load_multislice {len(recs) / tl:.1f} samples/s | raw cv2 decode "
                  f"{len(recs) / tr:.1f} samples/s | throughput ratio {tr / tl:.2f}x (target >= 0.9x)")


if __name__ == "__main__":
    main()
