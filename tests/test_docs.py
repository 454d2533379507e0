"""The commands in README.md and docs/*.md, run as a reader would run them.

A fenced ```bash or ```python block whose previous line is ``<!-- runnable -->`` is run verbatim
from the root of a throw-away copy of the repository, with this interpreter's ``bin`` first on
PATH (so ``python tools/...`` is the venv's python) and the copy first on PYTHONPATH (so the code
under test is the copy's, not whatever the venv has installed). Keep such blocks to seconds.

Every other ```bash block must say which test runs its commands with local stand-ins, with
``<!-- tested-by: PATH -->`` on the line before it (PATH relative to the repository root, e.g.
``tests/tools/test_download.py`` or ``.ci/run``), or why none does, with
``<!-- not-tested: REASON -->``: such a block is reported as skipped with its reason, so the gap
stays visible in every test run. A block with none of the three markers fails.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import List

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNABLE = "<!-- runnable -->"
TESTED_BY = re.compile(r"^<!--\s*tested-by:\s*(\S+)\s*-->$")
NOT_TESTED = re.compile(r"^<!--\s*not-tested:\s*(.+?)\s*-->$")
FENCE = re.compile(r"^```(\w*)\s*$")
TIMEOUT_S = 120


@dataclass
class Block:
    path: str  # relative to ROOT
    line: int  # 1-based line of the opening fence
    lang: str
    marker: str  # the line before the fence, stripped
    code: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def doc_files() -> List[str]:
    return [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]


def blocks_of(path: str) -> List[Block]:
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            i += 1
        if i == len(lines):
            raise ValueError(f"{path}:{start + 1}: a fenced block is never closed")
        marker = lines[start - 1].strip() if start > 0 else ""
        out.append(Block(os.path.relpath(path, ROOT), start + 1, lang, marker,
                         "\n".join(lines[start + 1:i]) + "\n"))
        i += 1
    return out


ALL_BLOCKS = [b for p in doc_files() for b in blocks_of(p)]
RUN = [b for b in ALL_BLOCKS if b.marker == RUNNABLE]
SHOWN = [b for b in ALL_BLOCKS if b.lang in ("bash", "sh", "shell") and b.marker != RUNNABLE]


def throwaway_copy(dest: str) -> str:
    """The repository as a fresh clone has it (tracked and new unignored files, as on disk)."""
    if shutil.which("git") and os.path.exists(os.path.join(ROOT, ".git")):
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, check=True, capture_output=True).stdout
        for rel in filter(None, out.decode().split("\0")):
            src = os.path.join(ROOT, rel)
            if os.path.isfile(src):
                os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
                shutil.copy2(src, os.path.join(dest, rel))
    else:  # an unpacked source tree: everything but what git would ignore anyway
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
            ".venv", "data", "work_dirs", "__pycache__", "*.egg-info", ".pytest_cache"))
        os.makedirs(os.path.join(dest, "data"), exist_ok=True)
    return dest


@pytest.mark.e2e
@pytest.mark.parametrize("block", RUN, ids=[b.where for b in RUN])
def test_runnable_block(block: Block, tmp_path):
    assert block.lang in ("bash", "python"), f"{block.where}: runnable blocks are bash or python"
    repo = throwaway_copy(str(tmp_path / "repo"))
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("MPLBACKEND", "Agg")
    if block.lang == "bash":
        cmd = ["bash", "-euo", "pipefail", "-c", block.code]
    else:
        script = os.path.join(str(tmp_path), "block.py")
        with open(script, "w") as f:
            f.write(block.code)
        cmd = [sys.executable, script]
    try:
        p = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where}: the block ran longer than {TIMEOUT_S} s; runnable blocks "
                    "must take seconds")
    if p.returncode != 0:
        pytest.fail(f"{block.where}: the {block.lang} block failed with exit code {p.returncode}\n"
                    f"--- block ---\n{block.code}--- stdout ---\n{p.stdout[-4000:]}"
                    f"--- stderr ---\n{p.stderr[-4000:]}", pytrace=False)


@pytest.mark.parametrize("block", SHOWN, ids=[b.where for b in SHOWN])
def test_shown_command_has_a_test(block: Block):
    untested = NOT_TESTED.match(block.marker)
    if untested:
        pytest.skip(f"{block.where}: no test runs this block: {untested.group(1)}")
    m = TESTED_BY.match(block.marker)
    if not m:
        pytest.fail(f"{block.where}: a shell block needs '{RUNNABLE}', '<!-- tested-by: PATH -->' or "
                    "'<!-- not-tested: REASON -->' on the line before it", pytrace=False)
    target = m.group(1).split("::")[0]
    assert os.path.exists(os.path.join(ROOT, target)), \
        f"{block.where}: tested-by names {target}, which does not exist"


def test_runner_finds_blocks():
    """The runner itself: markers are read from the line before the fence."""
    assert RUN, "no runnable block found in README.md or docs/"
    assert any(b.path == "README.md" and b.lang == "python" for b in RUN)


def _table_rows(text: str, heading: str) -> List[List[str]]:
    section = text.split(heading, 1)[1].split("\n#", 1)[0]
    return [[c.strip().strip("*") for c in ln.strip().strip("|").split("|")]
            for ln in section.splitlines() if ln.startswith("|") and not ln.startswith("|---")]


def test_readme_paper_table_matches_package_data():
    """The README's copy of the published figures agrees with paper_results.json (the one copy)."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        rows = _table_rows(f.read(), "### The paper's table")
    with open(os.path.join(ROOT, "alignshift", "evaluation", "paper_results.json")) as f:
        variants = json.load(f)["variants"]
    seen = 0
    for row in rows[1:]:
        key = re.search(r"`(\w[\w.]*)`", row[0])
        if not key:
            continue
        v = variants[key.group(1)]
        published = [f"{v[s]['avg']:.2f}" if v.get(s, {}).get("avg") is not None else "-"
                     for s in ("all", "thin", "thick")]
        assert row[1:4] == published, f"README row {row[0]}: {row[1:4]} != paper_results.json {published}"
        seen += 1
    assert seen >= 6, "the README's paper table lists fewer variants than expected"


def test_readme_is_short():
    """The README is for users: at most 8 KB; measurements and design notes live in docs/."""
    assert os.path.getsize(os.path.join(ROOT, "README.md")) <= 8 * 1024
