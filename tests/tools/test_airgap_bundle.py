"""tools/airgap_bundle.sh against a local stand-in for the package index (no network).

Every pinned wheel and the mmcv sdist are replaced by tiny packages of the same names, versions
and platform tags in a --find-links folder; the script's own pip calls then run unchanged.
"""

import os
import re
import subprocess
import sys
import tarfile
import zipfile

import pytest

pytestmark = pytest.mark.packaging

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tools", "airgap_bundle.sh")
BINARY_TAGS = {"pycocotools": "cp312-abi3-manylinux_2_17_x86_64",
               "shapely": "cp312-cp312-manylinux_2_17_x86_64"}


def _pins():
    text = open(SCRIPT).read()
    block = text[text.index("WHEELS=("):text.index(")\nMMCV_SDIST")]
    return re.findall(r'"([A-Za-z0-9_.-]+)==([0-9.]+)"', block)


def _fake_wheel(folder, name, version, requires=()):
    tag = BINARY_TAGS.get(name, "py3-none-any")
    dist = f"{name.replace('-', '_')}-{version}"
    with zipfile.ZipFile(folder / f"{dist}-{tag}.whl", "w") as z:
        z.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                   + "".join(f"Requires-Dist: {r}\n" for r in requires))
        z.writestr(f"{dist}.dist-info/WHEEL",
                   f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n")
        z.writestr(f"{dist}.dist-info/RECORD", "")


def _fake_sdist(folder, tmp):
    src = tmp / "mmcv-2.1.0"
    src.mkdir()
    (src / "setup.py").write_text("from setuptools import setup\nsetup(name='mmcv', version='2.1.0')\n")
    (src / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: mmcv\nVersion: 2.1.0\n")
    with tarfile.open(folder / "mmcv-2.1.0.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="mmcv-2.1.0")


def test_airgap_bundle_with_a_local_index(tmp_path):
    links = tmp_path / "links"
    links.mkdir()
    pins = _pins()
    assert ("mmengine", "0.10.7") in pins and ("mmdet", "3.3.0") in pins
    for name, version in pins:
        _fake_wheel(links, name, version, ["addict", 'tomli>=2; python_version < "3.11"',
                                           'sphinxlike; extra == "docs"'] if name == "yapf" else ())
    _fake_sdist(links, tmp_path)
    dest = tmp_path / "bundle"
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(links), PYTHON=sys.executable,
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    r = subprocess.run(["bash", SCRIPT, str(dest)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    files = sorted(os.listdir(dest))
    assert "mmcv-2.1.0.tar.gz" in files
    assert len([f for f in files if f.endswith(".whl")]) == len(pins)
    assert any(f.startswith("pycocotools-2.0.11-cp312") for f in files)
    assert "yapf: addict" in r.stdout and "sphinxlike" not in r.stdout  # extras left out
    assert "MiB in" in r.stdout


def test_wheel_parts_join_back(tmp_path):
    """docs/gpu.md: airgap_gpu_check.sh's split into 15 MiB parts, joined again with cat."""
    wheel = tmp_path / "cache" / "mmcv-2.1.0-cp312-cp312-linux_x86_64.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(os.urandom(31 * 2**20))
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["split", "-b", "15M", "-d", "-a", "2", str(wheel), str(out / wheel.name) + ".part-"],
                   check=True)
    parts = sorted(os.listdir(out))
    assert parts == [wheel.name + f".part-0{i}" for i in range(3)]
    assert all(os.path.getsize(out / p) <= 16 * 2**20 for p in parts)  # its per-file limit
    subprocess.run("cat mmcv-2.1.0-*.whl.part-* > mmcv-2.1.0-cp312-cp312-linux_x86_64.whl", shell=True,
                   cwd=out, check=True)
    assert (out / wheel.name).read_bytes() == wheel.read_bytes()
