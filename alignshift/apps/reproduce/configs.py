"""The config each reproduce run trains and tests with, resolved and written into its folder.

A run's config is a paper config (``configs/deeplesion/fasterrcnn_densenet_<variant>.py``), the
official inference config of a snapshot (``configs/deeplesion/official/<variant>.py``), or, for the
synthetic thickness benchmark, a paper config with the one benchmark overlay
(``configs/synthetic/thickness_benchmark.py``) on top. MMEngine refuses a key in two bases, so the
overlay is applied in code: it becomes the body of a config whose ``_base_`` is the paper config.
The resolved result, with the run's seed, schedule and data root, is dumped to
``<run folder>/config.py``; training and testing read that file, so a run folder says exactly what
ran.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, Mapping, Optional

from alignshift.apps.paths import config_path
from alignshift.fileio import atomic_path

__all__ = ["OVERLAY", "load_run_config", "paper_config", "official_config", "write_run_config"]

OVERLAY = "configs/synthetic/thickness_benchmark.py"


def paper_config(variant: str) -> str:
    """The path of the paper config of ``variant`` (e.g. ``'tsm_7slice'``)."""
    return config_path(f"configs/deeplesion/fasterrcnn_densenet_{variant}.py")


def official_config(variant: str) -> str:
    """The path of the inference config of the published snapshot of ``variant``."""
    return config_path(f"configs/deeplesion/official/{variant}.py")


def load_run_config(base: str, overlay: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                    options: Optional[Dict[str, Any]] = None):
    """``base`` with ``overlay`` applied as a child config, then ``options`` merged (mmengine ``Config``).

    Args:
        base: a config file.
        overlay: a config body that refers to ``base`` as ``_base_`` (it declares no ``_base_`` itself).
        env: environment variables for the ``{{$VAR:default}}`` substitutions while loading.
        options: dotted keys as ``--cfg-options`` takes them, e.g. ``{"train_cfg.max_epochs": 24}``.
    """
    from mmengine.config import Config

    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        if overlay is None:
            cfg = Config.fromfile(base, import_custom_modules=False)
        else:
            with open(overlay, encoding="utf-8") as f:
                body = f.read()
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, os.path.basename(overlay))
                with open(path, "w", encoding="utf-8") as f:
                    f.write(f"_base_ = [{os.path.abspath(base)!r}]\n{body}")
                cfg = Config.fromfile(path, import_custom_modules=False)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if options:
        cfg.merge_from_dict(dict(options))
    return cfg


def write_run_config(path: str, base: str, overlay: Optional[str] = None,
                     env: Optional[Mapping[str, str]] = None,
                     options: Optional[Dict[str, Any]] = None) -> str:
    """Resolve the run's config (:func:`load_run_config`) and dump it to ``path`` (write, then rename)."""
    cfg = load_run_config(base, overlay, env, options)
    with atomic_path(path, suffix=".py") as tmp:
        cfg.dump(tmp)
    return path
