"""DeepLesion for mmdet: the annotation files written by ``tools/prepare_deeplesion.py``."""

from __future__ import annotations

import os.path as osp
from typing import List, Sequence

from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS
from mmengine.fileio import load

from alignshift.data import DEFAULT_WINDOW, annotation_xyxy
from alignshift.errors import UserError


@DATASETS.register_module()
class DeepLesionDataset(BaseDetDataset):
    """Key slices of DeepLesion with their lesions, thickness and spacing.

    Args:
        num_slices, norm_interval, interpolate, window: how the load transform reads each sample
            (see :func:`alignshift.data.load_multislice` and :func:`alignshift.data.window`);
            stored with every sample so the pipeline needs no copy of them.
        data_prefix: ``dict(img='Images_png/')`` relative to ``data_root``.
    """

    METAINFO = {"classes": ("lesion",), "palette": [(220, 20, 60)]}

    def __init__(self, *args, num_slices: int = 7, norm_interval: float = 2.0,
                 interpolate: bool = True, window: Sequence[float] = DEFAULT_WINDOW,
                 **kwargs) -> None:
        self.num_slices, self.norm_interval = num_slices, norm_interval
        self.interpolate, self.window = interpolate, tuple(window)
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise UserError(f"annotation file {osp.abspath(self.ann_file)} does not exist",
                            field="data_root")
        ann = load(self.ann_file)
        for key in ("images", "annotations"):
            if key not in ann:
                raise KeyError(f"{self.ann_file}: no '{key}' list; write it with "
                               "tools/prepare_deeplesion.py")
        by_image = {}
        for a in ann["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        img_root = self.data_prefix.get("img", "")
        data_list = []
        for img in ann["images"]:
            for field in ("id", "file_name", "height", "width", "thickness", "spacing"):
                if field not in img:
                    raise KeyError(f"{self.ann_file}: image {img.get('id', '?')} lacks '{field}'")
            instances = []
            for a in by_image.get(img["id"], []):
                instances.append(dict(bbox=annotation_xyxy(a), bbox_label=0,
                                      ignore_flag=int(a.get("iscrowd", 0))))
            data_list.append(dict(
                img_path=osp.join(img_root, img["file_name"]), img_id=img["id"],
                file_name=img["file_name"], height=img["height"], width=img["width"],
                thickness=float(img["thickness"]), spacing=list(img["spacing"]),
                patient=img.get("patient"),
                num_slices=self.num_slices, norm_interval=self.norm_interval,
                interpolate=self.interpolate, window=self.window, instances=instances))
        return data_list

    def filter_data(self) -> List[dict]:
        if self.test_mode or not (self.filter_cfg or {}).get("filter_empty_gt", False):
            return self.data_list
        return [d for d in self.data_list if d["instances"]]

    def get_cat_ids(self, idx: int) -> List[int]:
        return [0] * len(self.get_data_info(idx)["instances"])
