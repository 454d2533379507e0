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
pytestmark = pytest.mark.packaging


def _console_scripts() -> dict:
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


CONSOLE_SCRIPTS = _console_scripts()


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
    from alignshift.apps.zoo import load_index
    assert {e.name for e in load_index()} >= {"alignshift_7slice"}  # the zoo's index, too
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
    for script in CONSOLE_SCRIPTS:  # installed as commands; --help needs no framework
        exe = os.path.join(site_dir, "bin", script)
        assert os.path.exists(exe), f"{script} was not installed"
    assert "--series" in run([os.path.join(site_dir, "bin", "alignshift-infer"), "--help"], cwd=str(tmp_path))


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
            # A subpackage re-exports a chosen part of its modules' names (alignshift.data.published
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
    code = "import sys, alignshift, alignshift.apps.cli; print('torch' in sys.modules)"
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


# -- the layout: the method never imports the tooling; tools are shims --------------------------

def _imports(path: str):
    """Every module name ``path`` imports, at any depth (lazy imports in functions included)."""
    import ast

    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    pkg = os.path.relpath(os.path.dirname(path), ROOT).replace(os.sep, ".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod
            yield from (f"{mod}.{a.name}" for a in node.names)


def _py_files(*folders: str):
    for folder in folders:
        for d, _, files in os.walk(os.path.join(ROOT, folder)):
            yield from (os.path.join(d, f) for f in sorted(files) if f.endswith(".py"))


def test_the_method_never_imports_the_tooling():
    """No module of alignshift/ outside alignshift/apps imports it (or mmdet_plugins), even lazily."""
    bad = []
    for path in _py_files("alignshift"):
        rel = os.path.relpath(path, ROOT)
        if rel.startswith(os.path.join("alignshift", "apps")):
            continue
        bad += [f"{rel} imports {m}" for m in set(_imports(path))
                if m.startswith(("alignshift.apps", "mmdet_plugins", "tools"))
                or m.split(".")[0] in FRAMEWORKS]
    assert not bad, "\n".join(sorted(bad))


def test_tools_are_thin_shims():
    """Each tools/*.py imports one alignshift.apps module and nothing of tools/; no sys.path edits."""
    for path in _py_files("tools", "benchmarks", "docs"):
        with open(path, encoding="utf-8") as f:
            assert "sys.path.insert" not in f.read(), f"{path} edits sys.path"
    scripts = {v.split(":")[0] for v in CONSOLE_SCRIPTS.values()}
    for path in _py_files("tools"):
        if os.path.basename(path) == "__init__.py":
            continue
        mods = set(_imports(path))
        assert not any(m.startswith("tools") for m in mods), f"{path} imports another tool"
        apps = {m for m in mods if m.startswith("alignshift.apps.")
                and not any(m == f"{x}.{n}" for x in mods for n in ("cli", "main"))}
        assert len(apps) == 1 and apps <= scripts, f"{path}: {sorted(mods)}"
        with open(path, encoding="utf-8") as f:
            assert len(f.read().splitlines()) <= 20, f"{path} is more than a shim"


def test_every_tool_is_a_console_script():
    import importlib

    shims = {os.path.basename(p)[:-3] for p in _py_files("tools")} - {"__init__"}
    targets = {v.split(":")[0] for v in CONSOLE_SCRIPTS.values()}
    assert len(shims) == len(targets) == len(CONSOLE_SCRIPTS)
    for name, target in CONSOLE_SCRIPTS.items():
        mod, func = target.split(":")
        assert name.startswith("alignshift-") and callable(getattr(importlib.import_module(mod), func))


# -- optional dependencies are optional --------------------------------------------------------

TORCH_ONLY_CHECK = textwrap.dedent("""
    import importlib, sys
    import alignshift.ops, alignshift.nn, alignshift.converter, alignshift.models, alignshift.boxes
    import torch
    net = alignshift.converter.convert(torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3)), conv="alignshift")
    y = net(torch.randn(1, 1, 3, 8, 8), thickness=torch.tensor([5.0]))
    extra = sorted(m for m in ("cv2", "SimpleITK", "yaml", "tqdm", "matplotlib", "pooch", "gdown",
                               "requests", "torchvision", "mmdet", "mmengine", "mmcv")
                   if importlib.util.find_spec(m) is not None)
    assert not extra, f"the venv is not torch-only: {extra}"
    try:
        import alignshift.inference
    except ImportError as e:
        print("ERR", e)
""")


def _torch_only_site(dest: str) -> str:
    """A folder that holds torch, numpy and what they need to import, as links: a torch-only install."""
    import importlib.metadata as md
    import re

    os.makedirs(dest, exist_ok=True)
    want, seen = ["torch", "numpy"], set()
    while want:
        name = re.split(r"[ ;<>=!~\[]", want.pop())[0].lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen.add(name)
        want += [r for r in (dist.requires or []) if "extra ==" not in r]
        for f in dist.files or []:
            top = str(f).split("/")[0]
            src = os.path.join(str(dist.locate_file("")), top)
            if top.endswith(".pth") or top == ".." or not os.path.exists(src):
                continue
            if not os.path.lexists(os.path.join(dest, top)):
                os.symlink(src, os.path.join(dest, top))
    return dest


def test_core_imports_with_torch_and_numpy_only(tmp_path):
    """A fresh venv that sees only torch and numpy: ops, nn, converter, models and boxes import and
    run; the inference package says which extra it needs, in one line."""
    src = clean_copy(str(tmp_path / "src"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    py = os.path.join(str(tmp_path / "venv"), "bin", "python")
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    site_dir = _torch_only_site(str(tmp_path / "torch_only"))
    with open(os.path.join(purelib, "_torch_only.pth"), "w") as f:
        f.write(site_dir + "\n" + src + "\n")
    out = run([py, "-c", TORCH_ONLY_CHECK], cwd=str(tmp_path))
    assert "ERR reading CT volumes (alignshift.inference) needs SimpleITK, which is not installed: " \
           "pip install 'alignshift[inference]'" in out, out
