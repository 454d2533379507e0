"""Every config resolves to what it resolved to when its behaviour was measured.

``tests/data/resolved_configs.json`` holds each config resolved by MMEngine (environment variables
unset, config-local helpers whose names start with ``_`` left out) as it was before the configs
were rewritten to define the meta keys and the test pipeline once in ``_base_`` and the seven
``configs/synthetic/<variant>.py`` became one overlay (``configs/synthetic/thickness_benchmark.py``,
applied by ``tools/reproduce.py``). A config changed on purpose updates the file:
``python tests/test_configs.py --update`` rewrites it, and the diff shows the change.
"""

from __future__ import annotations

import glob
import json
import os
import sys

import pytest

pytest.importorskip("mmengine")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD = os.path.join(ROOT, "tests", "data", "resolved_configs.json")
SYNTHETIC = ("2.5d_3slice", "2.5d_7slice", "tsm_3slice", "tsm_7slice", "alignshift_3slice",
             "alignshift_7slice", "a3d_7slice")


def _plain(x):
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def resolved_configs() -> dict:
    """``{name: resolved config}``; the benchmark's variants under ``configs/synthetic/<variant>.py``."""
    from mmengine.config import Config

    from alignshift.apps.reproduce.configs import OVERLAY, load_run_config, paper_config

    saved = {k: os.environ.pop(k, None) for k in ("DEEPLESION_ROOT", "THICKNESS_BENCHMARK_ROOT")}
    try:
        cfgs = {}
        for path in sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.py"), recursive=True)):
            rel = os.path.relpath(path, ROOT).replace(os.sep, "/")
            if "/_base_/" not in rel and rel != OVERLAY:
                cfgs[rel] = Config.fromfile(path, import_custom_modules=False)
        for v in SYNTHETIC:
            cfgs[f"configs/synthetic/{v}.py"] = load_run_config(paper_config(v), os.path.join(ROOT, OVERLAY))
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})
    return {name: {k: v for k, v in _plain(cfg.to_dict()).items() if not k.startswith("_")}
            for name, cfg in cfgs.items()}


def _diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                yield f"{path}{k}: {'added' if k not in a else 'removed'}"
            else:
                yield from _diff(a[k], b[k], f"{path}{k}.")
    elif a != b:
        yield f"{path[:-1]}: {str(a)[:80]} -> {str(b)[:80]}"


def test_every_config_resolves_as_recorded():
    with open(RECORD, encoding="utf-8") as f:
        recorded = json.load(f)
    now = resolved_configs()
    assert sorted(now) == sorted(recorded), "configs added or removed: update the record"
    problems = [f"{name}: {d}" for name in recorded for d in _diff(recorded[name], now[name])]
    assert not problems, "\n".join(problems[:20])


def test_meta_keys_and_test_pipeline_are_written_once():
    """Only configs/_base_ spells out the meta keys and the test pipeline; the others edit it."""
    for path in glob.glob(os.path.join(ROOT, "configs", "**", "*.py"), recursive=True):
        if "_base_" in path:
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        assert '"thickness", "spacing"' not in text, f"{path} restates the meta keys"
        assert 'dict(type="PackDetInputs"' not in text, f"{path} restates a pipeline"


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    with open(RECORD, "w", encoding="utf-8") as f:
        json.dump(resolved_configs(), f, indent=1, sort_keys=True)
    print(f"wrote {RECORD}")
