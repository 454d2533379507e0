"""Sensitivities of many weighted copies of one test split at once: the patient bootstrap.

A bootstrap resample draws the test split's patients with replacement; a patient drawn ``k`` times
brings ``k`` copies of each of its images. Copies change nothing in the matching (each detection
is a hit or a false positive in its own image), so every resample is the same sorted list of
detections with integer image weights, and its FROC curve is a weighted cumulative sum over that
list. :func:`weighted_sensitivity` computes, for ``B`` weightings at once, the sensitivity of any
set of lesions at the score thresholds where the weighted images average a given number of false
positives, with the interpolation of :meth:`alignshift.evaluation.FROCCurve.at`. With all weights
1 it is the ordinary FROC (the tests check it against :func:`alignshift.evaluation.froc`).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .froc import Matches

__all__ = ["patient_resamples", "weighted_sensitivity", "percentile_interval", "paired_p_value"]

_CHUNK_ELEMENTS = 1 << 24  # weights x false positives per chunk of resamples (~64 MB of int32)
_PREFIX_MARGIN = 1.5  # false positives scanned first, as a multiple of the unweighted need


def patient_resamples(patients: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Image weights of ``n`` resamples of the patients, drawn with replacement.

    Args:
        patients: (I,) the patient of each image.
        n: number of resamples.
        seed: seed of :func:`numpy.random.default_rng`; the same seed and patients give the
            same resamples, which is what makes a paired comparison paired.

    Returns:
        (n, I) int32: how many copies of each image each resample holds.
    """
    if n < 1:
        raise ValueError(f"the number of resamples must be >= 1, got {n}")
    uniq, inv = np.unique(np.asarray(patients), return_inverse=True)
    p = len(uniq)
    draws = np.random.default_rng(seed).integers(0, p, size=(n, p))
    counts = np.bincount((draws + (np.arange(n) * p)[:, None]).ravel(), minlength=n * p)
    return counts.reshape(n, p).astype(np.int32)[:, inv.ravel()]


def weighted_sensitivity(m: Matches, weights: np.ndarray, lesion_sets: np.ndarray,
                         rates: Sequence[float], image_mask: Optional[np.ndarray] = None
                         ) -> Tuple[np.ndarray, np.ndarray]:
    """Sensitivity of lesion sets at FP rates, for weighted copies of the images.

    The score threshold of rate ``x`` is where the weighted false positives of the images in
    ``image_mask`` reach ``x`` per weighted image; a lesion set's sensitivity there is its
    weighted hits over its weighted lesions, read off the curve as ``np.interp`` reads it
    (linear between the ends of equal-score steps, held outside the curve).

    Args:
        m: the matching of the split.
        weights: (B, I) non-negative integer weight of each image in each of B copies.
        lesion_sets: (K, L) bool, the lesions of each set (lesions outside ``image_mask`` count
            for nothing).
        rates: (R,) FP rates per image.
        image_mask: (I,) bool, the images whose false positives and lesions count (the image set
            of the curve); None for all.

    Returns:
        sens: (B, K, R) float64, NaN where a set has no (weighted) lesion or there is no image.
        num_lesions: (B, K) weighted lesion count of each set.
    """
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != m.num_images:
        raise ValueError(f"weights must have shape (B, {m.num_images}), got {weights.shape}")
    lesion_sets = np.atleast_2d(np.asarray(lesion_sets, bool))
    if lesion_sets.shape[1] != len(m.hit_rank):
        raise ValueError(f"lesion_sets must have shape (K, {len(m.hit_rank)}), got {lesion_sets.shape}")
    rates = np.asarray(rates, np.float64)
    if weights.size and int(weights.min()) < 0:
        raise ValueError("weights must be >= 0")
    mask = np.ones(m.num_images, bool) if image_mask is None else np.asarray(image_mask, bool)
    w = weights.astype(np.int32) * mask[None, :].astype(np.int32)
    n_b, (n_k, n_r), n_det = len(w), (len(lesion_sets), len(rates)), m.num_dets
    fp_pos = np.flatnonzero(m.det_fp & mask[m.det_img])  # the false positives that count
    fp_img, n_fp = m.det_img[fp_pos], len(fp_pos)
    fp_upto_step = np.searchsorted(fp_pos, m.step_end, side="right")  # (G,) FPs up to each step end
    # Only a prefix of the false positives is needed for rates up to max(rates): resamples
    # average one copy per image, so 1.5 x the unweighted need (to a step's end) nearly always
    # suffices; a chunk that runs past it is redone over all of them (exact either way).
    cut = min(n_fp, int(np.ceil(_PREFIX_MARGIN * rates.max(initial=0) * mask.sum())) + 16)
    if 0 < cut < n_fp:
        cut = int(fp_upto_step[m.det_step[fp_pos[cut - 1]]])
    first_det = np.full(m.num_images, n_det, np.int64)  # first sorted detection of each image
    np.minimum.at(first_det, m.det_img, np.arange(n_det))
    hit = m.hit_rank < n_det
    sets = []
    for k in range(n_k):
        idx = np.flatnonzero(lesion_sets[k] & hit)
        idx = idx[np.argsort(m.hit_rank[idx], kind="stable")]
        sets.append((m.gt_img[idx], m.hit_rank[idx]))
    num_les = w[:, m.gt_img].astype(np.float64) @ lesion_sets.T.astype(np.float64)  # (B, K)
    sens = np.full((n_b, n_k, n_r), np.nan)
    big = int(w.max(initial=0)) * max(n_fp, 1) >= 2**31
    chunk = max(1, min(n_b, _CHUNK_ELEMENTS // max(cut, 1)))
    for b0 in range(0, n_b, chunk):
        wc = w[b0:b0 + chunk]
        bc = len(wc)
        n_img = wc.sum(1, dtype=np.int64)
        target = rates[None, :] * n_img[:, None]  # (bc, R) weighted FPs at each rate
        y = np.zeros((bc, n_k, n_r))
        if n_fp:
            crossed, frac, e_prev, e_next = _crossings(wc, fp_pos, fp_img, fp_upto_step, m,
                                                       first_det, target, cut, big)
        for k, (img_k, rank_k) in enumerate(sets):
            if len(rank_k) == 0:
                continue
            cw = np.cumsum(wc[:, img_k], axis=1, dtype=np.int64)  # weighted hits in rank order
            if not n_fp:
                y[:, k] = cw[:, -1:]
                continue
            y_prev, y_next = _hits_at(cw, rank_k, e_prev), _hits_at(cw, rank_k, e_next)
            y[:, k] = np.where(crossed, y_prev + (y_next - y_prev) * frac, cw[:, -1:])
        nl = num_les[b0:b0 + bc]
        with np.errstate(invalid="ignore", divide="ignore"):
            s = y / nl[:, :, None]
        s[(nl == 0) | (n_img == 0)[:, None]] = np.nan
        sens[b0:b0 + bc] = s
    return sens, num_les


def _crossings(wc, fp_pos, fp_img, fp_upto_step, m: Matches, first_det, target, cut: int,
               big: bool):
    """Where each weighted curve passes each target: the points around it and the fraction.

    Returns crossed (bc, R) (False: beyond the curve), frac (bc, R) of the way from the last
    point at or below the target to the next one, and the sorted-detection ends of both points.
    """
    n_fp, n_det = len(fp_pos), m.num_dets
    dtype = np.int64 if big else np.int32
    while True:
        cum = np.cumsum(wc[:, fp_img[:cut]], axis=1, dtype=dtype)  # (bc, cut)
        # counts are integers: "cum <= target" is "cum <= floor(target)", searched without casts
        t_int = np.floor(target).astype(dtype)
        q = np.stack([np.searchsorted(cum[r], t_int[r], side="right") for r in range(len(wc))])
        if cut == n_fp or not (q >= cut).any():
            break
        cut = n_fp  # a resample needs more of the curve: take all of it
    crossed = q < n_fp  # else the rate lies beyond the curve: hold its last value
    d_star = fp_pos[np.minimum(q, n_fp - 1)]  # the false positive that passes the target
    nxt = m.det_step[d_star]  # the first curve point beyond the target ...
    prev = nxt - 1  # ... and the last one at or below it (-1: none)
    f_prev, f_next = _fps_at(cum, fp_upto_step, prev), _fps_at(cum, fp_upto_step, nxt)
    e_prev = np.where(prev >= 0, m.step_end[np.maximum(prev, 0)], -1)
    e_next = m.step_end[nxt]
    # before the first weighted detection the curve has no point: np.interp holds the first
    # one (a resample may leave out the images of the top-scored detections)
    first = np.where(wc > 0, first_det[None, :], n_det).min(1)
    hold = e_prev < first[:, None]
    step = np.where(hold | ~crossed, 1, f_next - f_prev)  # > 0 where it is used
    frac = np.where(hold, 1.0, (target - f_prev) / step)
    return crossed, frac, e_prev, e_next


def _fps_at(cum: np.ndarray, fp_upto_step: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Weighted false positives at the end of curve point ``step`` (bc, R); 0 before the first."""
    cnt = fp_upto_step[np.maximum(step, 0)]
    cnt = np.minimum(cnt, cum.shape[1])  # only where the point lies beyond the curve (unused)
    val = cum[np.arange(len(cum))[:, None], np.maximum(cnt - 1, 0)]
    return np.where((step >= 0) & (cnt > 0), val, 0)


def _hits_at(cw: np.ndarray, rank: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Weighted hits of a lesion set by sorted detection ``end`` (bc, R); -1: before any."""
    c = np.searchsorted(rank, end, side="right")
    return np.where(c > 0, cw[np.arange(len(cw))[:, None], np.maximum(c - 1, 0)], 0)


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> np.ndarray:
    """Percentile interval over axis 0, ignoring NaN (undefined resamples): (2, ...) low, high."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tail = 50 * (1 - level)
    samples = np.asarray(samples, np.float64)
    out = np.full((2,) + samples.shape[1:], np.nan)
    ok = ~np.isnan(samples).all(0)
    if ok.any():
        out[:, ok] = np.nanpercentile(samples[:, ok], [tail, 100 - tail], axis=0)
    return out


def paired_p_value(diff: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap p-value of "no difference" from resampled differences (axis 0).

    ``2 * min(#(d <= 0) + 1, #(d >= 0) + 1) / (n + 1)``, capped at 1, over the defined (non-NaN)
    resamples: identical detectors give 1, a difference of one sign in all ``n`` resamples gives
    ``2 / (n + 1)``. NaN where no resample is defined.
    """
    diff = np.asarray(diff, np.float64)
    ok = ~np.isnan(diff)
    n = ok.sum(0)
    le = ((diff <= 0) & ok).sum(0)
    ge = ((diff >= 0) & ok).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.minimum(1.0, 2.0 * (np.minimum(le, ge) + 1) / (n + 1))
    return np.where(n > 0, p, np.nan)
