"""The model zoo: the published AlignShift/TSM snapshots, their index, download and conversion.

- :mod:`.index` reads the package's ``model-index.yml`` and ``metafile.yml`` (OpenMMLab form);
- :mod:`.download` fetches a snapshot (pooch for URLs, gdown for the Google Drive folder, or a file
  the user fetched by hand), prints its sha256 and converts it on arrival;
- :mod:`.convert` turns a published mmdet 1.0rc1 state dict into this project's (pure torch);
- :mod:`.resolve` gives a tool a model by its name (config and converted checkpoint, fetched on
  first use);
- :mod:`.cli` is ``tools/download.py`` (``alignshift-download``, ``python -m alignshift.apps.zoo``).

The published slice sampling and box conventions the converted snapshots need are part of the
method: :mod:`alignshift.data.published` and :mod:`alignshift.boxes`.

Framework-free: nothing here imports mmdet, mmcv or mmengine.
"""

from .convert import (
                      CheckpointLayoutError,
                      ConversionReport,
                      convert_v1_checkpoint,
                      convert_v1_state_dict,
                      published_backbone_shapes,
                      v1_state_dict_layout,
)
from .download import download, sha256sum
from .index import ZooEntry, ZooIndexError, find_entry, load_index, resolve_config
from .resolve import ZooModel, ensure_checkpoint, zoo_model

__all__ = ["CheckpointLayoutError", "ConversionReport", "ZooEntry", "ZooIndexError", "ZooModel",
           "convert_v1_checkpoint", "convert_v1_state_dict", "download", "ensure_checkpoint", "find_entry",
           "load_index", "published_backbone_shapes", "resolve_config", "sha256sum", "v1_state_dict_layout",
           "zoo_model"]
