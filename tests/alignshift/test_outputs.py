"""alignshift.fileio (write, then rename) and alignshift.apps.outputs (marker-claimed folders)."""

import os

import pytest

from alignshift import fileio
from alignshift.apps import outputs
from alignshift.errors import UserError


def test_claim_refuses_user_folder_and_force_keeps_user_files(tmp_path):
    out = tmp_path / "out"
    assert outputs.claim_output_dir(str(out), "gen") == []
    with fileio.atomic_write(str(out / "a.txt")) as f:
        f.write("x")
    outputs.record_outputs(str(out), "gen", ["a.txt"])
    (out / "user.txt").write_text("keep")
    assert outputs.claim_output_dir(str(out), "gen") == ["a.txt"]
    with pytest.raises(UserError, match="output of 'gen', not of other"):
        outputs.claim_output_dir(str(out), "other")
    assert outputs.claim_output_dir(str(out), "gen", force=True) == ["a.txt"]
    assert sorted(os.listdir(out)) == ["user.txt"]
    with pytest.raises(UserError, match="not empty and was not written by gen"):
        outputs.claim_output_dir(str(out), "gen", force=True)
    assert (out / "user.txt").read_text() == "keep"


def test_claim_allows_listed_inputs(tmp_path):
    (tmp_path / "DL_info.csv").write_text("x")
    assert outputs.claim_output_dir(str(tmp_path), "gen", allowed=["DL_info.csv"]) == []


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "p.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with fileio.atomic_write(str(target)) as f:
            f.write("new")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == ["p.json"] and target.read_text() == "old"


def test_writable_checks(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        fileio.ensure_writable_file(str(tmp_path / "file" / "p.json"))
    with pytest.raises(UserError, match="is a folder"):
        fileio.ensure_writable_file(str(tmp_path))
    with pytest.raises(UserError, match="not writable"):
        fileio.ensure_writable_dir("/proc/alignshift-test")
    assert fileio.ensure_writable_file(str(tmp_path / "new" / "p.json")).endswith("p.json")
    assert not (tmp_path / "new").exists()


def test_force_keeps_user_files_inside_listed_folders(tmp_path):
    out = tmp_path / "out"
    outputs.claim_output_dir(str(out), "gen")
    (out / "imgs" / "s1").mkdir(parents=True)
    (out / "imgs" / "s1" / "1.png").write_text("x")
    outputs.record_outputs(str(out), "gen", ["imgs", "imgs/s1/1.png", "../escape", "/abs"])
    assert outputs.read_marker(str(out))["entries"] == ["imgs", "imgs/s1/1.png"]
    (out / "imgs" / "s1" / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="holds imgs/s1/mine.txt, which gen did not write"):
        outputs.claim_output_dir(str(out), "gen", force=True)
    assert (out / "imgs" / "s1" / "1.png").exists()  # refused before anything was removed
    (out / "imgs" / "s1" / "mine.txt").unlink()
    outputs.claim_output_dir(str(out), "gen", force=True)
    assert os.listdir(out) == []


def test_check_output_dir_changes_nothing(tmp_path):
    target = tmp_path / "new"
    assert outputs.check_output_dir(str(target), "gen") == [] and not target.exists()
    (tmp_path / "user.txt").write_text("keep")
    with pytest.raises(UserError, match=f"{tmp_path} is not empty and was not written by gen"):
        outputs.check_output_dir(str(tmp_path), "gen")
    assert (tmp_path / "user.txt").read_text() == "keep"
