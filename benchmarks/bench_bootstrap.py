"""Patient-bootstrap FROC speed on a split the size of DeepLesion's test split.

    python benchmarks/bench_bootstrap.py [--resamples 1000] [--dets 50] [--repeats 1] [--check 20]

The synthetic split has DeepLesion's test proportions: 4,831 key images of 628 patients (7.3
images per patient on average, as 32,120 images of 4,427 patients; skewed), 1.02 lesions per image
(32,735 / 32,120), slice intervals from 0.625 to 5 mm, the 8 lesion types and log-normal long
diameters. Each image gets ``--dets`` detections (50: the configs' ``max_per_img``), scores rounded
to 4 decimals as the predictions file stores them (so many scores tie). Prints the time of the
point estimate and of ``--resamples`` resamples with all three breakdowns, and checks ``--check``
resamples against the FROC of the explicitly copied images (identical to 1e-9).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from alignshift.evaluation import EvalSet, FROCProtocol, evaluate, froc, match_detections
from alignshift.evaluation.bootstrap import patient_resamples, weighted_sensitivity

TEST_IMAGES = 4831
IMAGES_PER_PATIENT = 32120 / 4427
LESIONS_PER_IMAGE = 32735 / 32120
INTERVALS = np.array([0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0])
INTERVAL_P = np.array([0.05, 0.1, 0.15, 0.05, 0.1, 0.05, 0.5])


def synthetic_split(n_images: int = TEST_IMAGES, n_dets: int = 50, seed: int = 0) -> EvalSet:
    """A DeepLesion-sized test split with detections (see the module docstring)."""
    rng = np.random.default_rng(seed)
    # patients with a skewed number of images (geometric, mean IMAGES_PER_PATIENT)
    per_patient = rng.geometric(1 / IMAGES_PER_PATIENT, size=n_images)
    patient = np.repeat(np.arange(n_images), per_patient)[:n_images]
    n_les = 1 + rng.binomial(2, (LESIONS_PER_IMAGE - 1) / 2, size=n_images)
    thickness = rng.choice(INTERVALS, n_images, p=INTERVAL_P)
    preds, gts = [], []
    for i in range(n_images):
        m = n_les[i]
        xy = rng.uniform(50, 400, (m, 2))
        wh = np.exp(rng.normal(3.2, 0.6, (m, 2))).clip(6, 200)
        g = np.hstack([xy, xy + wh])
        found = rng.random(m) < 0.93
        tp = g[found] + rng.normal(0, 0.05, (found.sum(), 1)) * np.hstack([wh[found], wh[found]])
        tp_scores = rng.beta(5, 1.2, found.sum())
        k = n_dets - len(tp)
        fp_xy = rng.uniform(0, 460, (k, 2))
        fp = np.hstack([fp_xy, fp_xy + rng.uniform(6, 60, (k, 2))])
        fp_scores = rng.beta(0.6, 6, k)
        boxes = np.vstack([tp, fp])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        scores = np.round(np.clip(np.concatenate([tp_scores, fp_scores]), 1e-3, 1), 4)
        preds.append(np.hstack([boxes, scores[:, None]]))
        gts.append(g)
    n_total = int(n_les.sum())
    return EvalSet(file_names=[f"{patient[i]:06d}_01_01/{i:03d}.png" for i in range(n_images)],
                   thickness=thickness, pred=preds, gt=gts, patient=patient,
                   lesion_type=rng.integers(1, 9, n_total),
                   diameters_mm=np.sort(np.exp(rng.normal(3.0, 0.6, (n_total, 2))), 1)[:, ::-1],
                   noisy=np.zeros(n_total, bool), noisy_lesions="excluded", source="synthetic")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--dets", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--check", type=int, default=20, help="resamples checked against copied images")
    args = ap.parse_args()

    data = synthetic_split(n_dets=args.dets)
    print(f"split: {data.num_images} images, {data.num_lesions} lesions, {data.num_patients} "
          f"patients, {sum(len(p) for p in data.pred)} detections")
    t0 = time.perf_counter()
    m = match_detections(data.pred, data.gt)
    t_match = time.perf_counter() - t0
    print(f"matching: {t_match:.2f} s; {m.num_dets} detections in {len(m.step_end)} equal-score steps")

    if args.check:
        w = patient_resamples(data.patient, args.check, seed=1)
        rates = FROCProtocol().rates
        sens, _ = weighted_sensitivity(m, w, np.ones((1, data.num_lesions), bool), rates)
        worst = 0.0
        for b in range(args.check):
            reps = np.repeat(np.arange(data.num_images), w[b])
            want = froc([data.pred[i] for i in reps], [data.gt[i] for i in reps]).at(rates)
            worst = max(worst, float(np.abs(sens[b, 0] - want).max()))
        assert worst < 1e-9, worst
        print(f"{args.check} resamples equal the FROC of their copied images (max diff {worst:.1e})")

    t0 = time.perf_counter()
    evaluate(data, breakdown="type,size,interval")
    t_point = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        report = evaluate(data, breakdown="type,size,interval", n_resamples=args.resamples, seed=0)
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"point estimate (all/thin/thick + type, size, interval): {t_point:.2f} s")
    print(f"{args.resamples} patient resamples, same breakdowns: {best:.1f} s "
          f"({1000 * best / args.resamples:.1f} ms per resample; target <= 30 s for 1000)")
    a = report.subsets["all"]
    print(f"All Avg. {100 * a.avg:.2f} % [{100 * a.avg_ci[0]:.2f}, {100 * a.avg_ci[1]:.2f}]")


if __name__ == "__main__":
    main()
