"""tools/download.py (alignshift.apps.zoo.cli) against a local HTTP server on 127.0.0.1 and a local
stand-in for gdown; nothing here touches the network."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading

import pytest
import torch

from alignshift.apps.cli import run_cli
from alignshift.apps.zoo.cli import main
from alignshift.apps.zoo.download import sha256sum
from alignshift.apps.zoo.testing import fake_published_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVE_ID = "1_ApYs5vb_VzkdqK02lb861Psj-GSdznV"


@pytest.fixture(autouse=True)
def quiet_pooch():
    """pooch logs through a handler bound to the stderr of the test that imported it first."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    yield
    logger.setLevel(level)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A published-layout 3-slice AlignShift checkpoint file (random weights) and its sha256."""
    folder = tmp_path_factory.mktemp("served")
    path = folder / "published.pth"
    torch.save(fake_published_checkpoint(3, "alignshift", seed=3), path)
    (folder / "tiny.bin").write_bytes(b"not a checkpoint")
    return str(path), sha256sum(str(path))


@pytest.fixture(scope="module")
def published7(tmp_path_factory):
    """The paper's main model in the published layout (7-slice AlignShift, random weights)."""
    path = tmp_path_factory.mktemp("by-hand") / "alignshift_7slice_published.pth"
    torch.save(fake_published_checkpoint(7, "alignshift", seed=7), path)
    return str(path), sha256sum(str(path))


@pytest.fixture(scope="module")
def server(published):
    """An http.server on 127.0.0.1 serving the folder of ``published``; counts GET requests."""
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    handler = functools.partial(Handler, directory=os.path.dirname(published[0]))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def _index(tmp_path, url, sha):
    path = tmp_path / "metafile.yml"
    sha_line = f"    Weights SHA256: {sha}\n" if sha else "    Weights SHA256: null\n"
    path.write_text("Models:\n  - Name: alignshift_3slice\n"
                    "    Config: configs/deeplesion/official/alignshift_3slice.py\n"
                    "    Metadata: {Conv: alignshift, Slices: 3, Paper Variant: alignshift_3slice}\n"
                    f"    Weights: {url}\n" + sha_line)
    return str(path)


def _run(argv, capsys, **kw):
    rc = run_cli(functools.partial(main, **kw), argv, prog="download.py")
    out, err = capsys.readouterr()
    return rc, out, err


def test_good_file_is_verified_converted_and_then_cached(tmp_path, server, published, capsys):
    base, hits = server
    idx = _index(tmp_path, f"{base}/published.pth", published[1])
    dest, cache = tmp_path / "checkpoints", tmp_path / "cache"
    argv = ["--index", idx, "download", "alignshift_3slice", "--dest", str(dest), "--cache-dir", str(cache),
            "--retries", "0", "--no-progress"]
    before = len(hits)
    rc, out, err = _run(argv, capsys)
    assert rc == 0, err
    assert len(hits) == before + 1
    assert f"sha256 {published[1]}" in out
    assert "dropped the mask head" in out and "background row moved last" in out
    assert sorted(os.listdir(dest)) == ["alignshift_3slice.pth"]
    ckpt = torch.load(dest / "alignshift_3slice.pth", weights_only=True)
    assert ckpt["meta"]["source"]["sha256"] == published[1]
    assert ckpt["meta"]["source"]["mmdet_version"].startswith("1.0rc1")
    assert ckpt["state_dict"]["roi_head.bbox_head.fc_reg.weight"].shape == (4, 2048)
    # second call: already there, nothing fetched
    rc, out, _ = _run(argv, capsys)
    assert rc == 0 and "already downloaded" in out
    assert len(hits) == before + 1


def test_wrong_hash_is_a_clear_error_and_leaves_nothing(tmp_path, server, published, capsys):
    base, _ = server
    idx = _index(tmp_path, f"{base}/tiny.bin", "ab" * 32)
    dest = tmp_path / "checkpoints"
    rc, out, err = _run(["--index", idx, "download", "alignshift_3slice", "--dest", str(dest), "--cache-dir",
                         str(tmp_path / "cache"), "--retries", "0", "--no-progress"], capsys)
    assert rc == 1
    assert err.count("\n") == 1 and "sha256" in err and "ab" * 32 in err and "Traceback" not in err
    assert not dest.exists() or os.listdir(dest) == []
    assert os.listdir(tmp_path / "cache") == []


def test_missing_file_404_is_a_clear_error(tmp_path, server, capsys):
    base, _ = server
    idx = _index(tmp_path, f"{base}/no-such.pth", None)
    dest = tmp_path / "checkpoints"
    rc, out, err = _run(["--index", idx, "download", "alignshift_3slice", "--dest", str(dest), "--cache-dir",
                         str(tmp_path / "cache"), "--retries", "0", "--no-progress"], capsys)
    assert rc == 1
    assert "HTTP 404" in err and "no-such.pth" in err and err.count("\n") == 1
    assert not dest.exists() or os.listdir(dest) == []


def test_not_a_checkpoint_is_refused(tmp_path, server, capsys):
    base, _ = server
    idx = _index(tmp_path, f"{base}/tiny.bin", None)
    rc, _, err = _run(["--index", idx, "download", "alignshift_3slice", "--dest", str(tmp_path / "ck"),
                       "--cache-dir", str(tmp_path / "cache"), "--retries", "0", "--no-progress"], capsys)
    assert rc == 1 and "weights_only=True" in err
    assert not (tmp_path / "ck").exists() or os.listdir(tmp_path / "ck") == []


def test_drive_folder_goes_through_the_injected_downloader(tmp_path, published7, capsys):
    calls = []

    def fake_gdown(folder_id, output, quiet):  # stands in for gdown.download_folder
        calls.append(folder_id)
        os.link(published7[0], os.path.join(output, "densenet_align_7slice.pth"))
        with open(os.path.join(output, "densenet_tsm_3slice.pth"), "wb") as f:
            f.write(b"another snapshot")
        return [os.path.join(output, "densenet_align_7slice.pth")]

    dest, cache = tmp_path / "checkpoints", tmp_path / "cache"
    # the documented command line: download alignshift_7slice
    argv = ["download", "alignshift_7slice", "--dest", str(dest), "--cache-dir", str(cache), "--no-progress"]
    rc, out, err = _run(argv, capsys, drive_downloader=fake_gdown)
    assert rc == 0, err
    assert calls == [DRIVE_ID]
    assert (dest / "alignshift_7slice.pth").is_file()
    assert f"sha256 {published7[1]}" in out and "alignshift 7-slice" in out
    # the folder is kept in the cache: another model from it needs no second folder download
    rc, _, err = _run(["download", "tsm_7slice", "--dest", str(dest), "--cache-dir", str(cache),
                       "--no-progress"], capsys, drive_downloader=fake_gdown)
    assert calls == [DRIVE_ID]
    assert rc == 1 and "--from FILE" in err and "densenet_tsm_3slice.pth" in err


def test_failed_drive_download_leaves_no_partial_folder(tmp_path, capsys):
    rc, _, err = _run(["download", "tsm_7slice", "--dest", str(tmp_path / "ck"), "--cache-dir",
                       str(tmp_path / "cache"), "--no-progress"], capsys,
                      drive_downloader=lambda folder_id, output, quiet: None)
    assert rc == 1 and "could not download the Google Drive folder" in err
    assert os.listdir(tmp_path / "cache") == []


def test_from_file_converts_a_hand_downloaded_snapshot(tmp_path, published7, capsys):
    def no_network(*args):
        raise AssertionError("--from must not download")

    dest = tmp_path / "checkpoints"
    # the documented command line: download alignshift_7slice --from FILE
    rc, out, err = _run(["download", "alignshift_7slice", "--from", published7[0], "--dest", str(dest)],
                        capsys, drive_downloader=no_network)
    assert rc == 0, err
    assert (dest / "alignshift_7slice.pth").is_file() and f"sha256 {published7[1]}" in out
    rc, _, err = _run(["download", "alignshift_3slice", "--from", published7[0], "--dest", str(dest)], capsys)
    assert rc == 1 and "the checkpoint has 7 slices, but 3 were asked for" in err
    rc, _, err = _run(["download", "alignshift_3slice", "--from", str(tmp_path / "nope.pth")], capsys)
    assert rc == 1 and "nope.pth: no such file" in err


def test_usage_errors(capsys):
    rc, _, err = _run([], capsys)
    assert rc == 2 and "--list" in err
    rc, _, err = _run(["download", "resnet50"], capsys)
    assert rc == 2 and "no model 'resnet50'" in err and "alignshift_7slice" in err


@pytest.mark.parametrize("cmd", [["tools/download.py"], ["-m", "alignshift.apps.zoo"]])
def test_list_command_line(cmd, tmp_path):
    (tmp_path / "alignshift_7slice.pth").write_bytes(b"x")
    res = subprocess.run([sys.executable, *cmd, "--list", "--dest", str(tmp_path)], cwd=ROOT, text=True,
                         capture_output=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["name", "slices", "conv", "paper", "Avg.", "source", "downloaded"]
    row = next(ln for ln in lines if ln.startswith("alignshift_7slice"))
    assert "87.06" in row and "Google Drive folder" in row and row.endswith("alignshift_7slice.pth")
    assert next(ln for ln in lines if ln.startswith("tsm_3slice")).endswith(" no")
