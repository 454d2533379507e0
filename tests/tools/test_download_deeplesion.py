"""tools/download_deeplesion.py and alignshift.apps.deeplesion_download against a local HTTP server.

The server (127.0.0.1, a thread) serves tiny zips in the release layout
(``Images_png/<series>/<slice>.png``) built from the synthetic release; its handler counts the
bytes it sends and records each Range header, and can cut a reply short, stall, ignore Range, or
serve corrupted bytes.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile

import pytest

from alignshift.apps import deeplesion_download as dl
from alignshift.apps import download_deeplesion, prepare_deeplesion
from alignshift.apps.cli import run_cli
from alignshift.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "download_deeplesion.py")
PROG = "download_deeplesion.py"


class _Server:
    """Files by name, plus knobs: ranges, cut[name] (bytes to send then hang up), stall[name]."""

    def __init__(self, files):
        self.files = dict(files)
        self.ranges = True
        self.cut = {}
        self.stall = {}
        self.corrupt = set()
        self.fail = {}  # name -> how many of the next requests get 503
        self.release = threading.Event()
        self.sent = {}
        self.log = []  # (name, Range header or None, status)
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                data = srv.files.get(name)
                rng = self.headers.get("Range")
                if data is None:
                    srv.log.append((name, rng, 404))
                    self.send_error(404)
                    return
                if srv.fail.get(name, 0) > 0:
                    srv.fail[name] -= 1
                    srv.log.append((name, rng, 503))
                    self.send_error(503)
                    return
                if name in srv.corrupt:
                    data = data[:-10] + bytes(b ^ 0xFF for b in data[-10:])
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if m and srv.ranges:
                    start = int(m.group(1))
                    if start >= len(data):
                        srv.log.append((name, rng, 416))
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                srv.log.append((name, rng, 206 if start else 200))
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                limit = srv.cut.pop(name, None)
                stall = srv.stall.pop(name, None)
                try:
                    if limit is not None or stall is not None:
                        n = limit if limit is not None else stall
                        self.wfile.write(body[:n])
                        self.wfile.flush()
                        srv.sent[name] = srv.sent.get(name, 0) + n
                        if stall is not None:
                            srv.release.wait(30)
                        self.close_connection = True
                        return
                    self.wfile.write(body)
                    srv.sent[name] = srv.sent.get(name, 0) + len(body)
                except OSError:  # the client went away (the kill test)
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *a: None
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _make_zip(members, big: int = 0) -> bytes:
    """A zip with ``members`` {arcname: bytes}; ``big`` adds that many random bytes in one member."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if big:
            zf.writestr("Images_png/999999_01_01/001.png", os.urandom(big))
    return buf.getvalue()


def _manifest(path, files, url="http://nihcc.invalid/static") -> str:
    with open(path, "w") as f:
        f.write("# test manifest\nfile\turl\tbytes\tmd5\tsha256\n")
        for name, data in files.items():
            f.write(f"{name}\t{url}/{name}\t{len(data)}\t{hashlib.md5(data).hexdigest()}\t"
                    f"{hashlib.sha256(data).hexdigest()}\n")
    return str(path)


@pytest.fixture(scope="module")
def release(synthetic_root):
    """Three zips in the release layout holding the synthetic series (a series may span two zips)."""
    img = synthetic_root / "Images_png"
    pngs = sorted(p.relative_to(synthetic_root).as_posix() for p in img.rglob("*.png"))
    parts = [pngs[i::3] for i in range(3)]  # interleaved, so most series span all three zips
    return {f"Images_png_{k + 1:02d}.zip": _make_zip({p: (synthetic_root / p).read_bytes() for p in part})
            for k, part in enumerate(parts)}, pngs


@pytest.fixture()
def served(release, tmp_path):
    files, pngs = release
    srv = _Server(files)
    yield srv, _manifest(tmp_path / "manifest.tsv", files), pngs
    srv.close()


def _cli(argv, capsys):
    rc = run_cli(download_deeplesion.main, [*argv, "--no-progress"], prog=PROG)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_clean_download_feeds_prepare_deeplesion(served, synthetic_root, tmp_path, capsys):
    srv, manifest, pngs = served
    dest = tmp_path / "DeepLesion"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")  # a user's file beside the data: left alone
    rc, out, err = _cli(["--dest", str(dest), "--manifest", manifest, "--mirror", srv.url, "--workers", "2"],
                        capsys)
    assert rc == 0, err
    assert "3 of 3 zips extracted" in out and "DL_info.csv missing" in err and dl.DL_INFO_PAGE in err
    assert sorted(f"Images_png/{p}" for p in _tree(dest / "Images_png")) == pngs
    assert all(srv.sent[n] == len(d) for n, d in srv.files.items())
    assert not list(dest.glob("*.zip*")) and (dest / "notes.txt").read_text() == "mine"
    for p in pngs[:5]:
        assert (dest / p).read_bytes() == (synthetic_root / p).read_bytes()
    # the user adds DL_info.csv by hand; the tree then feeds the preparer directly
    (dest / "DL_info.csv").write_bytes((synthetic_root / "DL_info.csv").read_bytes())
    assert prepare_deeplesion.main(["--data-root", str(dest)]) == 0
    assert "key slice PNG is missing" not in capsys.readouterr().out
    n = sum(len(json.loads((dest / "annotations" / f"deeplesion_{s}.json").read_text())["images"])
            for s in ("train", "val", "test"))
    assert n > 0
    # a finished download run again: nothing fetched
    before = len(srv.log)
    rc, out, _ = _cli(["--dest", str(dest), "--manifest", manifest, "--mirror", srv.url], capsys)
    assert rc == 0 and len(srv.log) == before and out.count("already extracted") == 3


def test_dropped_connection_resumes_with_range(served, tmp_path, capsys):
    srv, manifest, _ = served
    name = "Images_png_02.zip"
    size = len(srv.files[name])
    srv.cut[name] = size // 3
    dest = tmp_path / "dl"
    # no retries: the run fails, names the file and keeps what it fetched
    rc, _, err = _cli(["--dest", str(dest), "--manifest", manifest, "--mirror", srv.url, "--files", "2",
                       "--retries", "0"], capsys)
    assert rc == 1 and name in err and "run again to resume" in err and len(err.strip().splitlines()) == 1
    kept = os.path.getsize(dest / (name + ".partial"))
    assert kept == size // 3  # every byte received reached the disk
    sent_before = srv.sent[name]
    rc, _, err = _cli(["--dest", str(dest), "--manifest", manifest, "--mirror", srv.url, "--files", "2"],
                      capsys)
    assert rc == 0, err
    assert srv.log[-1] == (name, f"bytes={kept}-", 206)
    assert srv.sent[name] - sent_before == size - kept  # nothing fetched twice
    # within one run, retries with back-off continue the file the same way
    dest2 = tmp_path / "dl2"
    srv.cut[name] = size // 2
    statuses = dl.download([e for e in dl.with_mirror(dl.read_manifest(manifest), srv.url) if e.file == name],
                           str(dest2), retries=2, backoff=0, progress=False, log=lambda s: None)
    assert statuses[0].done and srv.log[-1][1].startswith("bytes=")


def test_killed_run_resumes_without_refetching(tmp_path, capsys):
    big = 3 << 20
    files = {"Images_png_01.zip": _make_zip({"Images_png/000001_01_01/001.png": b"\x89PNG tiny"}, big=big)}
    name, data = next(iter(files.items()))
    srv = _Server(files)
    manifest = _manifest(tmp_path / "m.tsv", files)
    dest = tmp_path / "dl"
    part = dest / (name + ".partial")
    cmd = [sys.executable, TOOL, "--dest", str(dest), "--manifest", manifest, "--mirror", srv.url,
           "--no-progress"]

    def run_until(size, sig):
        """Start the tool, let the server stall once the partial file holds ``size`` bytes, send ``sig``."""
        # The child starts with SIGINT's default action: a disposition of "ignore" inherited from
        # the test process would keep Python from installing its KeyboardInterrupt handler.
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                cwd=str(tmp_path),
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + 60
        while time.time() < deadline and not (part.exists() and part.stat().st_size >= size):
            time.sleep(0.05)
        t = time.time()
        proc.send_signal(sig)
        try:
            err = proc.communicate(timeout=30)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            err = proc.communicate()[1]
            pytest.fail(f"no exit 30 s after signal {sig!r} (the test process's SIGINT handler: "
                        f"{signal.getsignal(signal.SIGINT)!r}); stderr: {err[-2000:]}")
        return proc.returncode, err, time.time() - t

    try:
        # Ctrl-C while the connection is stalled: the tool exits at once, the partial file is kept
        srv.stall[name] = 1 << 20
        rc, err, took = run_until(1 << 20, signal.SIGINT)
        assert rc == 130 and "interrupted" in err and took < 10, (took, err)
        assert part.stat().st_size == 1 << 20
        # SIGKILL after the next MiB: every byte received is on disk
        srv.stall[name] = 1 << 20
        rc, _, _ = run_until(2 << 20, signal.SIGKILL)
        assert rc == -signal.SIGKILL and part.stat().st_size == 2 << 20
        assert srv.log[-1] == (name, f"bytes={1 << 20}-", 206)
        srv.release.set()
        sent_before = srv.sent[name]
        rc, _, err = _cli(["--dest", str(dest), "--manifest", manifest, "--mirror", srv.url], capsys)
        assert rc == 0, err
        assert srv.log[-1] == (name, f"bytes={2 << 20}-", 206)
        assert srv.sent[name] - sent_before == len(data) - (2 << 20)  # nothing fetched twice
        assert (dest / "Images_png" / "999999_01_01" / "001.png").stat().st_size == big
    finally:
        srv.close()


def test_server_errors_are_retried_with_backoff(served, tmp_path):
    srv, manifest, _ = served
    entry = dl.with_mirror(dl.read_manifest(manifest), srv.url)[0]
    srv.fail[entry.file] = 2
    sleeps = []
    dl.fetch_zip(entry, str(tmp_path / entry.file), retries=2, backoff=1.5, sleep=sleeps.append)
    assert sleeps == [1.5, 3.0] and dl.verify_file(str(tmp_path / entry.file), entry) is None
    srv.fail[entry.file] = 2
    with pytest.raises(dl.DownloadError, match=f"{entry.file}: download failed after 2 attempts.*HTTP 503"):
        dl.fetch_zip(entry, str(tmp_path / "again.zip"), retries=1, backoff=0)
    n = len(srv.log)
    missing = dl.ZipEntry("Images_png_09.zip", f"{srv.url}/Images_png_09.zip", 10, "", "0" * 64)
    with pytest.raises(dl.DownloadError, match="Images_png_09.zip: .* answered HTTP 404"):
        dl.fetch_zip(missing, str(tmp_path / "x.zip"), backoff=0)
    assert len(srv.log) == n + 1  # a missing file is not retried


def test_server_without_range_restarts_the_file(served, tmp_path, capsys):
    srv, manifest, _ = served
    name = "Images_png_01.zip"
    data = srv.files[name]
    dest = tmp_path / "dl"
    dest.mkdir()
    (dest / (name + ".partial")).write_bytes(data[:100])
    srv.ranges = False
    rc, _, err = _cli(["--dest", str(dest), "--manifest", manifest, "--mirror", srv.url, "--files", "1"],
                      capsys)
    assert rc == 0, err
    assert srv.log[-1] == (name, "bytes=100-", 200) and srv.sent[name] == len(data)
    assert dl.file_status(dl.read_manifest(manifest)[0], str(dest)).done


def test_corrupted_file_is_named_and_removed(served, tmp_path, capsys):
    srv, manifest, _ = served
    srv.corrupt.add("Images_png_03.zip")
    dest = tmp_path / "dl"
    rc, _, err = _cli(["--dest", str(dest), "--manifest", manifest, "--mirror", srv.url, "--files", "2-3"],
                      capsys)
    assert rc == 1 and len(err.strip().splitlines()) == 1
    assert "Images_png_03.zip" in err and "SHA-256" in err and "removed" in err
    assert not list(dest.glob("Images_png_03.zip*"))
    assert dl.file_status(dl.read_manifest(manifest)[1], str(dest)).done  # the good one went through


def test_check_good_partial_missing_and_incomplete(served, tmp_path, capsys):
    srv, manifest, pngs = served
    dest = tmp_path / "dl"
    args = ["--dest", str(dest), "--manifest", manifest, "--mirror", srv.url]
    rc, _, err = _cli([*args, "--check"], capsys)
    assert rc == 1 and "does not exist" in err
    assert _cli([*args, "--files", "1-2"], capsys)[0] == 0
    rc, out, err = _cli([*args, "--files", "1-2", "--check"], capsys)
    assert rc == 0 and "all 2 zips extracted and complete" in out
    n_requests = len(srv.log)
    # zip 3: partial; zip 2: one PNG gone; then zip 3 missing; then zip 3 kept but corrupt
    name3 = "Images_png_03.zip"
    (dest / (name3 + ".partial")).write_bytes(srv.files[name3][:50])
    with zipfile.ZipFile(io.BytesIO(srv.files["Images_png_02.zip"])) as zf:
        gone = zf.namelist()[0]
    os.remove(dest / gone)
    rc, out, err = _cli([*args, "--check"], capsys)
    assert rc == 1 and "2 of 3 zips not extracted completely" in err
    lines = dict(line.split("  ", 1) for line in out.splitlines())
    assert lines["Images_png_01.zip"].startswith("extracted")
    assert lines["Images_png_02.zip"].startswith("incomplete: 1 series folder incomplete: "
                                                 f"{gone.split('/')[1]} (1 file)")
    assert lines[name3] == f"partial: 50 of {len(srv.files[name3]):,} bytes"
    assert lines["DL_info.csv"].startswith("missing")
    os.remove(dest / (name3 + ".partial"))
    rc, out, _ = _cli([*args, "--check"], capsys)
    assert rc == 1 and f"{name3}  missing" in out
    bad = bytearray(srv.files[name3])
    bad[-1] ^= 0xFF
    (dest / name3).write_bytes(bytes(bad))
    rc, out, _ = _cli([*args, "--check"], capsys)
    assert rc == 1 and f"{name3}  corrupt: SHA-256" in out
    (dest / "DL_info.csv").write_text("not NIH's\n")
    rc, out, _ = _cli([*args, "--check", "--files", "1"], capsys)
    assert rc == 1 and "DL_info.csv  mismatch" in out
    assert len(srv.log) == n_requests  # --check never fetches
    # a normal run repairs it all: the corrupt zip is replaced, zip 2 fetched again and re-extracted
    rc, _, err = _cli(args, capsys)
    assert rc == 1 and "Images_png_03.zip" in err and "removed" in err  # the kept corrupt zip
    assert _cli(args, capsys)[0] == 0 and (dest / gone).exists()
    (dest / "DL_info.csv").unlink()
    assert _cli([*args, "--check"], capsys)[0] == 0


def test_dl_info_check(tmp_path):
    assert dl.check_dl_info(str(tmp_path))[0] == "missing"
    (tmp_path / "DL_info.csv").write_bytes(b"x" * 10)
    state, msg = dl.check_dl_info(str(tmp_path))
    assert state == "mismatch" and "8,479,888" in msg
    sha = hashlib.sha256(b"x" * 10).hexdigest()
    assert dl.check_dl_info(str(tmp_path), size=10, sha256=sha)[0] == "ok"


def test_disk_space_is_checked_before_fetching(served, tmp_path):
    srv, manifest, _ = served
    entries = dl.with_mirror(dl.read_manifest(manifest), srv.url)
    statuses = [dl.file_status(e, str(tmp_path / "x")) for e in entries]
    need = dl.disk_needed(statuses, workers=1, keep_zips=False)
    sizes = sorted((e.size for e in entries), reverse=True)
    assert need == sum(sizes) + sizes[0]
    with pytest.raises(UserError, match="not enough disk space.*--files"):
        dl.download(entries, str(tmp_path / "x"), progress=False, disk_usage=lambda p: (0, 0, need - 1))
    assert srv.log == []
    # the real manifest: 238 GB of zips, about as much again extracted
    real = [dl.FileStatus(e, "missing") for e in dl.read_manifest()]
    assert len(real) == 56 and sum(s.entry.size for s in real) == 238_116_019_288
    assert 2 * 238e9 < dl.disk_needed(real, 2, keep_zips=True) < 2 * 239e9


@pytest.mark.parametrize("argv, code, message", [
    (["--files", "1-x"], 2, "--files: expected numbers and ranges"),
    (["--files", "4"], 2, "--files: 4 is outside 1-3"),
    (["--workers", "0"], 2, "--workers must be >= 1"),
    (["--mirror", "ftp://x"], 2, "--mirror: expected an http(s) URL"),
    (["--dest", "/proc/alignshift-test/DeepLesion"], 1, "is not writable"),
])
def test_cli_errors_are_one_line(served, tmp_path, capsys, argv, code, message):
    srv, manifest, _ = served
    base = {"--dest": str(tmp_path / "dl"), "--manifest": manifest, "--mirror": srv.url}
    for k, v in zip(argv[::2], argv[1::2]):
        base[k] = v
    rc, _, err = _cli([x for kv in base.items() for x in kv], capsys)
    assert rc == code and message in err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"{PROG}: error:")
    assert srv.log == []


def test_bad_manifest_rows_are_named(tmp_path, capsys):
    good = "a.zip\thttp://h/a.zip\t10\t" + "0" * 32 + "\t" + "0" * 64
    header = "file\turl\tbytes\tmd5\tsha256"
    cases = {
        "a.zip\thttp://h/a.zip\tten\t\t" + "0" * 64: "line 3, column bytes",
        "a.zip\thttp://h/a.zip\t10\t\t": "line 3: needs an md5 or a sha256",
        "a.zip\thttp://h/a.zip\t10": "line 3: expected 5 tab-separated columns",
        "../a.zip\thttp://h/a.zip\t10\t" + "0" * 32 + "\t": "line 3, column file",
        "a.zip\thttp://h/a.zip\t10\t" + "z" * 32 + "\t": "line 3, column md5",
    }
    for row, message in cases.items():
        path = tmp_path / "m.tsv"
        path.write_text(f"# comment\n{header}\n{row}\n")
        rc, _, err = _cli(["--dest", str(tmp_path / "dl"), "--manifest", str(path)], capsys)
        assert rc == 1 and message in err and str(path) in err, err
    path.write_text(f"{header}\n{good}\n{good}\n")
    rc, _, err = _cli(["--dest", str(tmp_path / "dl"), "--manifest", str(path)], capsys)
    assert rc == 1 and "line 3, column file: a.zip is already listed on line 2" in err
    assert dl.parse_file_spec("1-3, 5,2", 56) == [1, 2, 3, 5]


def test_killed_extraction_leaves_no_complete_looking_png(served, tmp_path):
    srv, manifest, _ = served
    entry = dl.read_manifest(manifest)[0]
    dest = tmp_path / "dl"
    dest.mkdir()
    zip_path = dest / entry.file
    zip_path.write_bytes(srv.files[entry.file])

    class Killed(BaseException):
        pass

    calls = []

    def on_file(n):
        calls.append(n)
        if len(calls) == 3:
            raise Killed

    with pytest.raises(Killed):
        dl.extract_zip(str(zip_path), str(dest), entry, on_file=on_file)
    assert not list(dest.rglob("*.partial")) and not (dest / dl.STATE_DIR).exists()
    status = dl.file_status(entry, str(dest))
    assert status.state == "downloaded" and "incomplete" in status.detail
    # a run killed inside a file leaves it under a hidden temporary name only; the next run replaces it
    with zipfile.ZipFile(zip_path) as zf:
        series, png = zf.namelist()[5].split("/")[1:]
    stale = dest / "Images_png" / series / f".{png}.{entry.file}.partial"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a PNG")
    assert not (dest / "Images_png" / series / png).exists()
    n = len(zipfile.ZipFile(zip_path).namelist())
    assert dl.extract_zip(str(zip_path), str(dest), entry) == (n - 3, [])
    assert not stale.exists()
    assert dl.file_status(entry, str(dest)).done


def test_members_outside_the_layout_are_skipped_and_reported(tmp_path, capsys):
    files = {"Images_png_01.zip": _make_zip({
        "Images_png/000001_01_01/001.png": b"a", "000002_01_01/001.png": b"b",  # without the top folder
        "__MACOSX/Images_png/._x.png": b"junk", "../escape.png": b"c", "Images_png/a/b/c.png": b"d"})}
    srv = _Server(files)
    try:
        dest = tmp_path / "dl"
        rc, out, err = _cli(["--dest", str(dest), "--manifest", _manifest(tmp_path / "m.tsv", files),
                             "--mirror", srv.url], capsys)
        assert rc == 0, err
        assert "skipped 3 member(s)" in out and "__MACOSX" in out
        assert _tree(tmp_path) == sorted(["m.tsv", "dl/Images_png/000001_01_01/001.png",
                                          "dl/Images_png/000002_01_01/001.png",
                                          f"dl/{dl.STATE_DIR}/Images_png_01.zip.json"])
        # Ctrl-C: a set stop event ends a fetch at its next chunk and keeps the partial file
        stop = threading.Event()
        stop.set()
        entry = dl.with_mirror(dl.read_manifest(str(tmp_path / "m.tsv")), srv.url)[0]
        with pytest.raises(dl.Cancelled):
            dl.fetch_zip(entry, str(tmp_path / "x.zip"), stop=stop)
        assert os.path.getsize(tmp_path / "x.zip.partial") > 0
    finally:
        srv.close()


def _doc_commands():
    """The shell lines of the "Downloading the images" section of docs/deeplesion.md."""
    with open(os.path.join(ROOT, "docs", "deeplesion.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Downloading the images", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line for b in blocks for line in b.splitlines() if line.strip()]


def test_doc_commands_run_against_a_local_mirror(release, synthetic_root, tmp_path):
    """Each command of the docs section, verbatim, plus a local --mirror and a 56-zip test list."""
    _, pngs = release
    files = {f"Images_png_{k + 1:02d}.zip": _make_zip({p: (synthetic_root / p).read_bytes()
                                                       for p in pngs[k::56]}) for k in range(56)}
    srv = _Server(files)
    try:
        manifest = _manifest(tmp_path / "list.tsv", files)
        commands = _doc_commands()
        assert len(commands) == 4 and all(c.startswith("python tools/") for c in commands)
        (tmp_path / "data" / "DeepLesion").mkdir(parents=True)
        env = dict(os.environ, PYTHONPATH=ROOT)
        for cmd in commands:
            argv = cmd.split()
            argv[:2] = [sys.executable, os.path.join(ROOT, argv[1])]
            if "download_deeplesion" in cmd:
                argv += ["--mirror", srv.url, "--manifest", manifest, "--no-progress"]
            else:  # the user has put DL_info.csv in place by hand
                (tmp_path / "data" / "DeepLesion" / "DL_info.csv").write_bytes(
                    (synthetic_root / "DL_info.csv").read_bytes())
            proc = subprocess.run(argv, cwd=str(tmp_path), env=env, capture_output=True, text=True,
                                  timeout=120)
            assert proc.returncode == 0, (cmd, proc.stderr[-2000:])
        assert len(srv.log) == 56  # the later commands fetched nothing again
        assert (tmp_path / "data" / "DeepLesion" / "annotations" / "deeplesion_train.json").exists()
    finally:
        srv.close()
