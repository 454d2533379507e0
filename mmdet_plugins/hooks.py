"""Detection overlays on the key slice (``tools/test.py --show-dir``)."""

from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np
from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from alignshift.apps.outputs import claim_output_dir, record_outputs
from alignshift.data import read_hu, window
from alignshift.fileio import atomic_path

OVERLAY_TOOL = "DeepLesionVisualizationHook"  # owner named in an overlay folder's marker


def draw_overlay(key_hu: np.ndarray, gt_boxes: np.ndarray, pred_boxes: np.ndarray,
                 hu_window: Sequence[float] = (-175.0, 275.0), scale: int = 2) -> np.ndarray:
    """The windowed key slice (BGR uint8), detections in red with scores, ground truth in green on top."""
    img = window(key_hu, tuple(hu_window)).astype(np.uint8)
    img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if scale != 1:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    for b in np.asarray(pred_boxes).reshape(-1, 5):
        x1, y1, x2, y2 = (int(round(v * scale)) for v in b[:4])
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 0, 255), 1)
        cv2.putText(img, f"{b[4]:.2f}", (x1, max(y1 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (0, 0, 255), 1, cv2.LINE_AA)
    for b in np.asarray(gt_boxes).reshape(-1, 4):
        x1, y1, x2, y2 = (int(round(v * scale)) for v in b)
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 200, 0), 1)
    return img


@HOOKS.register_module()
class DeepLesionVisualizationHook(Hook):
    """Write ``<out_dir>/<series>_<slice>.png`` overlays for test images.

    Args:
        draw: off unless asked (``tools/test.py --show-dir`` turns it on).
        score_thr: detections drawn at or above this score.
        out_dir: folder for the PNGs (a relative path in a config goes under the work dir;
            ``tools/test.py --show-dir`` passes an absolute one). It must be new, empty or hold
            overlays of an earlier run, which are replaced (the folder's marker lists them).
        max_images: stop after this many (None: all); the log says so when it bites.
        hu_window: display window (soft tissue by default).
    """

    priority = "NORMAL"

    def __init__(self, draw: bool = False, score_thr: float = 0.5, out_dir: Optional[str] = None,
                 max_images: Optional[int] = None, hu_window: Sequence[float] = (-175.0, 275.0)):
        self.draw, self.score_thr, self.out_dir = draw, score_thr, out_dir
        self.max_images, self.hu_window = max_images, tuple(hu_window)
        self._written, self._not_drawn, self._pending = 0, 0, []

    def before_test(self, runner) -> None:
        self._written, self._not_drawn, self._pending = 0, 0, []
        if self.draw:
            self.out_dir = osp.join(runner.work_dir, self.out_dir or "overlays")
            # refuses a folder of a user's; earlier overlays (listed in its marker) are replaced
            claim_output_dir(self.out_dir, OVERLAY_TOOL, force=True)

    def _flush(self) -> None:
        if self._pending:
            record_outputs(self.out_dir, OVERLAY_TOOL, self._pending)
            self._pending = []

    def after_test(self, runner) -> None:
        if not self.draw:
            return
        self._flush()
        msg = f"wrote {self._written} overlays to {self.out_dir}"
        if self._not_drawn:
            msg += (f"; capped at max_images={self.max_images}, {self._not_drawn} test images not "
                    "drawn (default_hooks.visualization.max_images=None draws all)")
        runner.logger.info(msg)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.draw or outputs is None:
            return
        for s in outputs:
            if self.max_images is not None and self._written >= self.max_images:
                self._not_drawn += 1
                continue
            # the test pipelines load annotations after Resize: ground truth is in original pixels
            gt = s.gt_instances.bboxes
            gt = (gt.tensor if hasattr(gt, "tensor") else gt).cpu().numpy()
            p = s.pred_instances
            keep = (p.scores >= self.score_thr).cpu().numpy()
            pred = np.hstack([p.bboxes.cpu().numpy(), p.scores.cpu().numpy()[:, None]])[keep]
            img = draw_overlay(read_hu(s.metainfo["img_path"]), gt, pred, self.hu_window)
            name = s.metainfo.get("file_name", osp.basename(s.metainfo["img_path"]))
            fname = name.replace("/", "_").replace("\\", "_")
            # listed in the marker before the file exists (past 100 images in batches of 50, which
            # bounds the marker rewrites), so a killed run leaves little that a rerun cannot replace
            self._pending.append(fname)
            if self._written < 100 or len(self._pending) >= 50:
                self._flush()
            with atomic_path(osp.join(self.out_dir, fname), suffix=".png") as tmp:
                cv2.imwrite(tmp, img)
            self._written += 1
