"""The package as a user installs it: setup.py shim, a fresh venv, and a core free of mmdet."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMEWORKS = ("mmdet", "mmcv", "mmengine")


def clean_copy(dest: str) -> str:
    """The files git would check out (tracked plus new, unignored ones), as they are on disk."""
    if shutil.which("git") is None or not os.path.exists(os.path.join(ROOT, ".git")):
        pytest.skip("needs a git checkout to know which files a clean copy holds")
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True).stdout
    for rel in filter(None, out.decode().split("\0")):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src):  # a tracked file deleted in the work tree is not copied
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))
    return dest


def fresh_venv(path: str) -> str:
    """A new venv that sees this interpreter's packages (torch, mmdet...) after its own.

    ``venv --system-site-packages`` would see the *base* interpreter's packages, not this venv's,
    so the dependencies are added with a ``.pth`` line instead: nothing is downloaded or built.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", path], check=True)
    py = os.path.join(path, "bin", "python")
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    ours = [p for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if os.path.isdir(p)]
    with open(os.path.join(purelib, "_parent_env.pth"), "w") as f:
        f.write("\n".join(ours) + "\n")
    return py


def run(cmd, cwd: str, timeout: int = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    # offline: no index, and no isolated build env (setup.py develop runs `pip install -e .`)
    env.update(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PYTHONNOUSERSITE="1")
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    shown = " ".join(c if len(c) < 80 else c[:40] + "..." for c in cmd)
    assert p.returncode == 0, f"{shown} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


IMPORT_CHECK = textwrap.dedent("""
    import importlib.resources, json, os, sys
    import alignshift, mmdet_plugins
    from alignshift import convert, SliceThickness
    from alignshift.evaluation import paper_variant
    assert paper_variant("alignshift_7slice")["all"]["avg"] > 0  # package data shipped
    print(os.path.dirname(alignshift.__file__), os.path.dirname(mmdet_plugins.__file__))
""")


def test_setup_py_is_the_documented_shim():
    with open(os.path.join(ROOT, "setup.py")) as f:
        code = [ln for ln in f.read().splitlines() if ln.strip() and not ln.startswith("#")]
    assert code == ["from setuptools import setup", "setup()"], "metadata belongs in pyproject.toml"


def test_install_into_fresh_venv_from_clean_copy(tmp_path):
    src = clean_copy(str(tmp_path / "src"))
    py = fresh_venv(str(tmp_path / "venv"))
    # a regular (wheel) install: what `pip install .` does, offline and against the torch here
    run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--ignore-installed",
         src], cwd=str(tmp_path))
    where = run([py, "-c", IMPORT_CHECK], cwd=str(tmp_path)).split()
    site_dir = str(tmp_path / "venv")
    assert all(w.startswith(site_dir) for w in where), f"imported from {where}, not the fresh venv"


def test_setup_py_develop(tmp_path):
    src = clean_copy(str(tmp_path / "src"))
    py = fresh_venv(str(tmp_path / "venv"))
    run([py, "setup.py", "-q", "develop", "--no-deps"], cwd=src)
    where = run([py, "-c", IMPORT_CHECK], cwd=str(tmp_path)).split()
    assert all(w.startswith(src) for w in where), f"imported from {where}, not the source copy"


# Importing every module of the core with the three frameworks made unimportable: the core must
# work after `pip install .` without the mmdet extra, and must not even import them when present.
CORE_CHECK = textwrap.dedent("""
    import importlib, importlib.abc, pkgutil, sys

    FRAMEWORKS = {frameworks!r}

    tried = []

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in FRAMEWORKS:
                tried.append(name)  # also an attempt caught by a try/except in the core
                raise ImportError(f"alignshift imported {{name}}")

    sys.meta_path.insert(0, Block())
    import alignshift
    names = ["alignshift"] + [m.name for m in pkgutil.walk_packages(alignshift.__path__, "alignshift.")]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            if "triton" in str(e).lower():  # an optional accelerator, not a framework
                continue
            raise
    for name in alignshift.__all__:
        getattr(alignshift, name)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in FRAMEWORKS)
    assert not leaked and not tried, (leaked, tried)
    print(len(names))
""")


def test_core_never_imports_mmdet_mmcv_mmengine():
    code = CORE_CHECK.format(frameworks=FRAMEWORKS)
    out = run([sys.executable, "-c", code], cwd=ROOT, timeout=180)
    assert int(out.split()[-1]) >= 10  # the walk found the package's modules


# The public names agree at every level: a subpackage re-exports what its modules export, and the
# top level re-exports the same objects under the same names.
API_CHECK = textwrap.dedent("""
    import importlib, pkgutil, types
    import alignshift

    problems = []
    def public(mod):
        return [m for m in pkgutil.iter_modules(mod.__path__) if not m.name.startswith("_")]

    def walk(pkg):
        for info in public(pkg):
            try:
                mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
            except ImportError as e:
                if "triton" in str(e).lower():
                    continue
                raise
            names = getattr(mod, "__all__", None)
            if names is None:
                problems.append(f"{mod.__name__} has no __all__")
                continue
            if len(set(names)) != len(names):
                problems.append(f"{mod.__name__}.__all__ lists a name twice")
            problems.extend(f"{mod.__name__}.__all__ names {n!r}, which it lacks"
                            for n in names if not hasattr(mod, n))
            if info.ispkg:
                walk(mod)
            # A subpackage re-exports a chosen part of its modules' names (alignshift.data.download
            # is imported by its full name); what it re-exports must be the module's own object.
            if pkg is not alignshift:
                problems.extend(f"{pkg.__name__}.{n} is not {mod.__name__}.{n}"
                                for n in names if n in pkg.__all__ and getattr(pkg, n) is not getattr(mod, n))

    walk(alignshift)
    for name in alignshift.__all__:
        if name == "__version__":
            continue
        obj = getattr(alignshift, name)
        owners = [m for m in (alignshift.ops, alignshift.converter, alignshift.nn)
                  if name in m.__all__ and getattr(m, name) is obj]
        if not owners:
            problems.append(f"alignshift.{name} is not the object a subpackage exports")
    for name in ("convert", "align_shift", "tsm_shift", "depth_shift", "SliceThickness",
                 "Conv1xKxK", "TSMConv", "AlignShiftConv", "A3DConv"):
        if name not in alignshift.__all__:
            problems.append(f"alignshift.__all__ lacks {name}")
    print("\\n".join(problems) or "OK")
""")


def test_all_lists_agree():
    out = run([sys.executable, "-c", API_CHECK], cwd=ROOT, timeout=180)
    assert out.strip() == "OK", out


def test_top_level_import_is_light():
    """`import alignshift` (and so the CLI helpers) does not import torch until a name is used."""
    code = "import sys, alignshift, alignshift.cli; print('torch' in sys.modules)"
    assert run([sys.executable, "-c", code], cwd=ROOT).strip() == "False"


def test_license_and_citation_files():
    import yaml

    from alignshift.version import __version__

    with open(os.path.join(ROOT, "LICENSE")) as f:
        assert "Apache License" in f.read(300)
    with open(os.path.join(ROOT, "CITATION.cff")) as f:
        cff = yaml.safe_load(f)
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "Apache-2.0"
    assert str(cff["version"]) == __version__, "CITATION.cff and alignshift/version.py disagree"
    assert "AlignShift" in cff["preferred-citation"]["title"]
