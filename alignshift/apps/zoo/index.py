"""The model index: the package's ``model-index.yml`` -> ``metafile.yml`` (OpenMMLab form).

Each model entry carries, besides the OpenMMLab fields (``Name``, ``In Collection``, ``Config``,
``Metadata``, ``Results``, ``Weights``), the ones the downloader needs:

- ``Weights``: an http(s) URL of the file, or a Google Drive folder URL (``/drive/folders/<id>``).
- ``Weights SHA256``: the file's sha256, or null where nobody has pinned it yet.
- ``Weights Mirrors``: other places a user can fetch it by hand (then ``--from FILE``).
- ``Metadata.Conv`` / ``Metadata.Slices`` / ``Metadata.Paper Variant`` (a key of
  :func:`alignshift.evaluation.paper.paper_results` ``['variants']``).

Both files are package data (read from the installed package). ``Config`` paths are relative to
the source tree (``configs/deeplesion/official/...``): :func:`resolve_config` finds them. The
paper's figures under ``Results`` are a copy for OpenMMLab tooling; ``tests/alignshift/test_zoo.py``
checks that they agree with ``alignshift/evaluation/paper_results.json``, the one source every tool
reads.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from ..paths import config_path

__all__ = ["ZooEntry", "ZooIndexError", "default_index_path", "find_entry", "load_index", "resolve_config"]

_DRIVE_FOLDER = re.compile(r"^https://drive\.google\.com/drive/folders/([A-Za-z0-9_-]+)")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ZooIndexError(ValueError):
    """The model index (or a metafile it imports) is malformed; the message names file and field."""


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo."""

    name: str
    config: str
    conv: str
    slices: int
    paper_variant: Optional[str]
    weights: str
    sha256: Optional[str] = None
    mirrors: Tuple[str, ...] = ()
    results: Tuple[Dict[str, Any], ...] = field(default=(), compare=False)
    metafile: str = ""

    @property
    def drive_folder_id(self) -> Optional[str]:
        """The Google Drive folder id when the weights live in a Drive folder, else None."""
        m = _DRIVE_FOLDER.match(self.weights)
        return m.group(1) if m else None

    @property
    def source(self) -> str:
        """A short description of where the weights come from."""
        if self.drive_folder_id:
            return "Google Drive folder" + (" (+ mirrors)" if self.mirrors else "")
        return re.sub(r"^https?://([^/]+)/.*$", r"\1", self.weights)


def default_index_path() -> str:
    """The ``model-index.yml`` shipped in this package."""
    return str(Path(__file__).resolve().parent / "model-index.yml")


def resolve_config(entry: ZooEntry) -> str:
    """The path of ``entry.config`` (:func:`alignshift.apps.paths.config_path`)."""
    return config_path(entry.config)


def _load_yaml(path: str) -> Any:
    if not os.path.isfile(path):
        raise ZooIndexError(f"model index {path} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ZooIndexError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from e


def _entry(model: Any, path: str, i: int) -> ZooEntry:
    where = f"{path}: Models[{i}]"
    if not isinstance(model, dict):
        raise ZooIndexError(f"{where}: expected a mapping, got {type(model).__name__}")
    name = model.get("Name")
    if not isinstance(name, str) or not name:
        raise ZooIndexError(f"{where}: 'Name' is missing")
    where = f"{path}: model {name!r}"
    meta = model.get("Metadata") or {}
    for key, typ in (("Config", str), ("Weights", str)):
        if not isinstance(model.get(key), typ):
            raise ZooIndexError(f"{where}: '{key}' is missing or not a {typ.__name__}")
    for key, typ in (("Conv", str), ("Slices", int)):
        if not isinstance(meta.get(key), typ):
            raise ZooIndexError(f"{where}: 'Metadata.{key}' is missing or not a {typ.__name__}")
    if not re.match(r"^https?://", model["Weights"]):
        raise ZooIndexError(f"{where}: 'Weights' must be an http(s) URL, got {model['Weights']!r}")
    sha = model.get("Weights SHA256")
    if sha is not None and not (isinstance(sha, str) and _SHA256.match(sha.lower())):
        raise ZooIndexError(f"{where}: 'Weights SHA256' must be 64 hex digits or null, got {sha!r}")
    mirrors = model.get("Weights Mirrors") or []
    if not isinstance(mirrors, list):
        raise ZooIndexError(f"{where}: 'Weights Mirrors' must be a list")
    return ZooEntry(name=name, config=model["Config"], conv=meta["Conv"], slices=meta["Slices"],
                    paper_variant=meta.get("Paper Variant"), weights=model["Weights"],
                    sha256=sha.lower() if sha else None, mirrors=tuple(str(m) for m in mirrors),
                    results=tuple(model.get("Results") or ()), metafile=path)


def _metafile_entries(path: str) -> List[ZooEntry]:
    doc = _load_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("Models"), list):
        raise ZooIndexError(f"{path}: expected a metafile with a 'Models' list")
    return [_entry(m, path, i) for i, m in enumerate(doc["Models"])]


def load_index(path: Optional[str] = None) -> List[ZooEntry]:
    """Every model of the index ``path`` (default :func:`default_index_path`).

    ``path`` is a ``model-index.yml`` (whose ``Import`` list names metafiles, relative to it) or a
    metafile itself (a ``Models`` list). Names must be unique.
    """
    path = path or default_index_path()
    doc = _load_yaml(path)
    if isinstance(doc, dict) and "Import" in doc:
        imports = doc["Import"]
        if not isinstance(imports, list) or not imports:
            raise ZooIndexError(f"{path}: 'Import' must be a non-empty list of metafiles")
        base = os.path.dirname(os.path.abspath(path))
        entries = [e for rel in imports for e in _metafile_entries(os.path.join(base, str(rel)))]
    else:
        entries = _metafile_entries(path)
    seen: Dict[str, str] = {}
    for e in entries:
        if e.name in seen:
            raise ZooIndexError(f"{e.metafile}: model {e.name!r} is listed twice (also in {seen[e.name]})")
        seen[e.name] = e.metafile
    return entries


def find_entry(entries: List[ZooEntry], name: str) -> ZooEntry:
    """The entry called ``name``; ``KeyError`` listing the known names otherwise."""
    for e in entries:
        if e.name == name:
            return e
    raise KeyError(f"no model {name!r} in the zoo; known: {', '.join(e.name for e in entries)}")
