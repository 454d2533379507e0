"""Fetch the DeepLesion image zips: resumable, verified, unpacked into the layout the tools read.

The release is 56 zips (``Images_png_01.zip`` .. ``_56.zip``, 238 GB) whose members are
``Images_png/<patient>_<study>_<series>/<slice>.png``. Extracted into a data root beside
``DL_info.csv`` they give ``DATA_ROOT/Images_png/<series>/<slice>.png``, which
``tools/prepare_deeplesion.py`` and :func:`alignshift.data.load_multislice` read.

What lives in the data root, and who owns it:

- ``Images_png_NN.zip.partial``: a download in progress. A later run continues it with an HTTP
  ``Range`` request; a server that ignores ``Range`` makes the file start again from byte 0.
- ``Images_png_NN.zip``: a finished download, renamed from ``.partial`` only after its size, MD5 and
  SHA-256 matched the manifest. It is removed after extraction unless ``keep_zips``.
- ``Images_png/<series>/<slice>.png``: each written as ``.<slice>.png.<zip name>.partial`` and
  renamed, so a killed run never leaves a short PNG under its real name.
- ``.deeplesion_download/Images_png_NN.zip.json``: written when a zip is fully extracted; it lists
  every member with its size and CRC-32. :func:`check` uses it to find incomplete series folders
  after the zip itself is gone.

Nothing else in the data root (``DL_info.csv``, annotations, a user's own files) is touched.
Downloads use ``requests`` streaming. ``pooch`` (1.9) was not used: it always writes into a fresh
temporary file that it deletes on failure, so an interrupted 4.3 GB file cannot be resumed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import UsageError, UserError, require
from ..fileio import atomic_write, ensure_writable_dir

__all__ = [
    "DEFAULT_MANIFEST", "DL_INFO_BYTES", "DL_INFO_PAGE", "DL_INFO_SHA256", "MANIFEST_COLUMNS",
    "Cancelled", "ChecksumError", "DownloadError", "FileStatus", "ZipEntry", "check", "check_dl_info",
    "disk_needed", "download", "ensure_disk_space", "extract_zip", "fetch_zip", "file_status",
    "parse_file_spec", "read_manifest", "verify_file", "with_mirror",
]

DEFAULT_MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deeplesion_images.tsv")
MANIFEST_COLUMNS = ("file", "url", "bytes", "md5", "sha256")
DL_INFO_NAME = "DL_info.csv"
DL_INFO_BYTES = 8_479_888
DL_INFO_SHA256 = "a8f57b4b1164c9ed770b5add2920d5f4c5f8defa0df467e12f6a51951e38995c"
DL_INFO_PAGE = "https://nihcc.app.box.com/v/DeepLesion"
IMAGE_DIR = "Images_png"
STATE_DIR = ".deeplesion_download"
PARTIAL = ".partial"
# PNGs barely shrink in a zip, so the extracted slices take about as much room as the zips.
EXTRACTED_PER_ZIP_BYTE = 1.0
CHUNK = 1 << 20
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}

class DownloadError(UserError):
    """A file could not be fetched (network, HTTP status, wrong size); the message names it."""


class ChecksumError(UserError):
    """A finished file does not match the manifest; it has been removed."""


class Cancelled(Exception):
    """A worker saw the stop event (the user pressed Ctrl-C); what it wrote so far stays resumable."""


@dataclass(frozen=True)
class ZipEntry:
    """One manifest row: a zip of the release."""

    file: str  # base name, e.g. "Images_png_01.zip"
    url: str
    size: int  # bytes
    md5: str  # lower-case hex, "" when unknown
    sha256: str  # lower-case hex, "" when unknown
    line: int = 0  # 1-based line in the manifest


# ---------------------------------------------------------------------------------------------------
# manifest and selection


def read_manifest(path: str = DEFAULT_MANIFEST) -> List[ZipEntry]:
    """Read a tab-separated manifest with the columns ``file url bytes md5 sha256``.

    Lines starting with ``#`` and blank lines are skipped. At least one of md5 / sha256 per row.

    Raises:
        UserError: naming the file, line and column of the first malformed row.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise UserError(f"manifest {path}: cannot read it ({err.strerror or err})") from None
    header: Optional[List[str]] = None
    entries: List[ZipEntry] = []
    seen: Dict[str, int] = {}
    for no, text in enumerate(lines, 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in text.split("\t")]
        if header is None:
            if sorted(cells) != sorted(MANIFEST_COLUMNS):
                raise UserError(f"manifest {path}, line {no}: expected the tab-separated header "
                                f"{' '.join(MANIFEST_COLUMNS)}, got {text!r}")
            header = cells
            continue
        where = f"manifest {path}, line {no}"
        if len(cells) != len(header):
            raise UserError(f"{where}: expected {len(header)} tab-separated columns, got {len(cells)}")
        row = dict(zip(header, cells))
        name = row["file"]
        if not name or "/" in name or "\\" in name or name in (".", "..") or not name.endswith(".zip"):
            raise UserError(f"{where}, column file: expected a plain file name ending in .zip, got {name!r}")
        if name in seen:
            raise UserError(f"{where}, column file: {name} is already listed on line {seen[name]}")
        if not re.match(r"^https?://\S+$", row["url"]):
            raise UserError(f"{where}, column url: expected an http(s) URL, got {row['url']!r}")
        if not row["bytes"].isdigit() or int(row["bytes"]) <= 0:
            raise UserError(f"{where}, column bytes: expected a positive integer, got {row['bytes']!r}")
        md5, sha = row["md5"].lower(), row["sha256"].lower()
        for col, val, n in (("md5", md5, 32), ("sha256", sha, 64)):
            if val and not re.match(rf"^[0-9a-f]{{{n}}}$", val):
                raise UserError(f"{where}, column {col}: expected {n} hex digits or nothing, got {val!r}")
        if not md5 and not sha:
            raise UserError(f"{where}: needs an md5 or a sha256 checksum, both are empty")
        seen[name] = no
        entries.append(ZipEntry(name, row["url"], int(row["bytes"]), md5, sha, no))
    if not entries:
        raise UserError(f"manifest {path}: no files listed")
    return entries


def parse_file_spec(spec: Optional[str], count: int) -> List[int]:
    """``"1-5,56"`` -> ``[1, 2, 3, 4, 5, 56]``: 1-based positions in a manifest of ``count`` files.

    ``None`` or ``"all"`` selects every file.

    Raises:
        UsageError: on a malformed spec or a number outside 1..count.
    """
    if spec is None or spec.strip().lower() == "all":
        return list(range(1, count + 1))
    picked: List[int] = []
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise UsageError(f"--files: expected numbers and ranges such as 1-5,56, got {part.strip()!r} "
                             f"in {spec!r}")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if lo > hi:
            raise UsageError(f"--files: range {lo}-{hi} runs backwards")
        for n in (lo, hi):
            if not 1 <= n <= count:
                raise UsageError(f"--files: {n} is outside 1-{count} (the manifest lists {count} files)")
        picked.extend(n for n in range(lo, hi + 1) if n not in picked)
    return picked


def with_mirror(entries: Sequence[ZipEntry], base_url: str) -> List[ZipEntry]:
    """The same files, fetched as ``base_url/<file>`` (an institution's copy, a local server)."""
    if not re.match(r"^https?://\S+$", base_url):
        raise UsageError(f"--mirror: expected an http(s) URL, got {base_url!r}")
    base = base_url.rstrip("/")
    return [ZipEntry(e.file, f"{base}/{e.file}", e.size, e.md5, e.sha256, e.line) for e in entries]


# ---------------------------------------------------------------------------------------------------
# verification


def _digests(path: str, md5: bool, sha256: bool) -> Tuple[str, str]:
    h_md5, h_sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK * 4)
            if not block:
                break
            if md5:
                h_md5.update(block)
            if sha256:
                h_sha.update(block)
    return (h_md5.hexdigest() if md5 else ""), (h_sha.hexdigest() if sha256 else "")


def verify_file(path: str, entry: ZipEntry) -> Optional[str]:
    """``None`` when ``path`` has the manifest's size and checksums, else what differs."""
    size = os.path.getsize(path)
    if size != entry.size:
        return f"{size:,} bytes, expected {entry.size:,}"
    md5, sha = _digests(path, bool(entry.md5), bool(entry.sha256))
    if entry.sha256 and sha != entry.sha256:
        return f"SHA-256 {sha}, expected {entry.sha256}"
    if entry.md5 and md5 != entry.md5:
        return f"MD5 {md5}, expected {entry.md5}"
    return None


def check_dl_info(dest: str, size: int = DL_INFO_BYTES, sha256: str = DL_INFO_SHA256) -> Tuple[str, str]:
    """State of ``dest/DL_info.csv``: ``("ok" | "missing" | "mismatch", message)``."""
    path = os.path.join(dest, DL_INFO_NAME)
    if not os.path.isfile(path):
        return "missing", (f"{path} is missing: NIH serves it only from the web page {DL_INFO_PAGE} "
                           f"(download {DL_INFO_NAME} there by hand and put it in {dest})")
    entry = ZipEntry(DL_INFO_NAME, "", size, "", sha256)
    problem = verify_file(path, entry)
    if problem:
        return "mismatch", f"{path} is not NIH's release file: {problem}"
    return "ok", f"{path} matches NIH's release ({size:,} bytes, SHA-256 {sha256[:12]}...)"


# ---------------------------------------------------------------------------------------------------
# download


class _Retry(Exception):
    """A failure worth another attempt (dropped connection, 5xx, unusable partial response)."""


def _content_range(value: str) -> Tuple[Optional[int], Optional[int]]:
    """``"bytes 100-199/1000"`` -> (100, 1000); unknown parts are None."""
    m = re.match(r"^\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*$", value or "")
    if not m:
        return None, None
    return int(m.group(1)), (None if m.group(2) == "*" else int(m.group(2)))


def fetch_zip(entry: ZipEntry, path: str, session=None, *, retries: int = 5, backoff: float = 2.0,
              timeout: float = 60.0, chunk_size: int = CHUNK,
              on_bytes: Optional[Callable[[int], None]] = None,
              sleep: Callable[[float], None] = time.sleep, stop: Optional[threading.Event] = None) -> None:
    """Download ``entry`` to ``path``, continuing ``path + ".partial"`` where a run left off.

    Each attempt asks for ``Range: bytes=<have>-``. A ``206`` reply is appended at the offset it
    names; a ``200`` reply (a server without ranges) rewrites the file from byte 0. Dropped
    connections and 5xx replies are retried ``retries`` times, waiting ``backoff * 2**k`` seconds.
    The finished file is checked (size, MD5, SHA-256) before it is renamed to ``path``.
    ``on_bytes(n)`` reports progress, negative when a restart discards bytes. Setting ``stop``
    raises :class:`Cancelled` at the next chunk, keeping the partial file.

    Raises:
        DownloadError: the server refused the file, or every attempt failed (the partial is kept).
        ChecksumError: the finished file does not match (it is removed).
    """
    require("requests", "download", "downloading DeepLesion")
    import requests
    import urllib3

    own_session = session is None
    session = session or requests.Session()
    part = path + PARTIAL
    report = on_bytes or (lambda n: None)
    last_error = ""
    try:
        for attempt in range(retries + 1):
            if attempt:
                if stop is not None and stop.is_set():
                    raise Cancelled(entry.file)
                sleep(backoff * 2 ** (attempt - 1))
            have = os.path.getsize(part) if os.path.exists(part) else 0
            if have > entry.size:  # not a prefix of this file: start over
                os.unlink(part)
                report(-have)
                have = 0
            if have == entry.size:
                break
            try:
                _fetch_once(entry, part, have, session, timeout, chunk_size, report, stop)
            except _Retry as err:
                last_error = str(err)
                continue
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError, urllib3.exceptions.HTTPError) as err:
                last_error = f"{type(err).__name__}: {err}"
                continue
            if os.path.getsize(part) == entry.size:
                break
            last_error = f"the connection ended at byte {os.path.getsize(part):,} of {entry.size:,}"
        else:
            have = os.path.getsize(part) if os.path.exists(part) else 0
            raise DownloadError(f"{entry.file}: download failed after {retries + 1} attempts from "
                                f"{entry.url} ({last_error}); {have:,} of {entry.size:,} bytes kept in "
                                f"{part}, run again to resume")
    finally:
        if own_session:
            session.close()
    problem = verify_file(part, entry)
    if problem:
        os.unlink(part)
        raise ChecksumError(f"{entry.file}: the downloaded file does not match the manifest ({problem}); "
                            f"removed {part}, run again to fetch it anew")
    os.replace(part, path)


def _fetch_once(entry: ZipEntry, part: str, have: int, session, timeout: float, chunk_size: int,
                report: Callable[[int], None], stop: Optional[threading.Event]) -> None:
    headers = {"Range": f"bytes={have}-"} if have else {}
    with session.get(entry.url, headers=headers, stream=True, timeout=timeout) as r:
        if r.status_code in RETRY_STATUS:
            raise _Retry(f"HTTP {r.status_code} {r.reason}")
        if r.status_code == 416:  # the server's copy is shorter than our partial: start over
            os.unlink(part)
            report(-have)
            raise _Retry("HTTP 416: the partial file is longer than the server's copy")
        if r.status_code not in (200, 206):
            raise DownloadError(f"{entry.file}: {entry.url} answered HTTP {r.status_code} {r.reason}")
        if r.status_code == 206:
            start, total = _content_range(r.headers.get("Content-Range", ""))
            if start is None or start > have:  # unusable reply: fetch the whole file next time
                if os.path.exists(part):
                    os.unlink(part)
                report(-have)
                raise _Retry(f"unusable Content-Range {r.headers.get('Content-Range')!r}")
        else:  # 200: the whole file, whatever we asked for
            start, total = 0, r.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
        if total is not None and total != entry.size:
            raise DownloadError(f"{entry.file}: {entry.url} serves {total:,} bytes, the manifest expects "
                                f"{entry.size:,} (a wrong URL, or an error page?)")
        with open(part, "r+b" if os.path.exists(part) else "wb") as f:
            f.seek(start)
            f.truncate()
            if start != have:
                report(start - have)
            for chunk in _chunks(r, chunk_size):
                f.write(chunk)
                report(len(chunk))
                if stop is not None and stop.is_set():
                    raise Cancelled(entry.file)


def _chunks(r, chunk_size: int) -> Iterator[bytes]:
    """The body as it arrives. ``iter_content`` waits for whole chunks and drops the last partial
    chunk when the connection breaks; urllib3 2's ``read1`` hands over every byte received."""
    read1 = getattr(r.raw, "read1", None)
    if read1 is None:
        yield from r.iter_content(chunk_size=chunk_size)
        return
    while True:
        data = read1(chunk_size, decode_content=True)
        if not data:
            return
        yield data


# ---------------------------------------------------------------------------------------------------
# extraction


def _release_path(member: str) -> Optional[str]:
    """Zip member -> path under the data root, ``Images_png/<series>/<file>``; None if outside it."""
    parts = member.replace("\\", "/").split("/")
    if len(parts) == 2:  # a zip without the top folder: put it where the tools look
        parts = [IMAGE_DIR, *parts]
    if (len(parts) != 3 or parts[0] != IMAGE_DIR
            or any(p in ("", ".", "..") or p.startswith(".") for p in parts)):
        return None  # never written: no path can leave the data root or hide as a temporary name
    return "/".join(parts)


def _layout(zf: zipfile.ZipFile) -> Tuple[List[Tuple[zipfile.ZipInfo, str]], List[str]]:
    """The members in the release layout with their paths, and the names of all others."""
    kept, other = [], []
    for info in zf.infolist():
        if info.is_dir():
            continue
        rel = _release_path(info.filename)
        if rel is None:
            other.append(info.filename)
        else:
            kept.append((info, rel))
    return kept, other


def _crc32(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                return crc
            crc = zlib.crc32(block, crc)


def _record_path(dest: str, name: str) -> str:
    return os.path.join(dest, STATE_DIR, name + ".json")


def _read_record(dest: str, entry: ZipEntry) -> Optional[dict]:
    try:
        with open(_record_path(dest, entry.file), encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("size") != entry.size or rec.get("sha256") != entry.sha256:
        return None  # written for another version of this file
    return rec


def extract_zip(zip_path: str, dest: str, entry: ZipEntry, on_file: Optional[Callable[[int], None]] = None,
                stop: Optional[threading.Event] = None) -> Tuple[int, List[str]]:
    """Unpack ``zip_path`` into ``dest/Images_png/<series>/<slice>.png``.

    Each file is written under a hidden temporary name in its folder and renamed; files already in
    place with the member's size and CRC-32 are kept (a resumed extraction). The member list is
    recorded in ``dest/.deeplesion_download/<zip>.json`` once every member is in place.

    Returns:
        (files written, names of members outside ``Images_png/<series>/<file>``, which are skipped).
    """
    written = 0
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as err:
        raise UserError(f"{entry.file}: not a readable zip ({err})") from None
    with zf:
        members, other = _layout(zf)
        for info, rel in members:
            if stop is not None and stop.is_set():
                raise Cancelled(entry.file)
            target = os.path.join(dest, rel)
            if (os.path.isfile(target) and os.path.getsize(target) == info.file_size
                    and _crc32(target) == info.CRC):
                if on_file:
                    on_file(1)
                continue
            folder, base = os.path.split(target)
            os.makedirs(folder, exist_ok=True)
            tmp = os.path.join(folder, f".{base}.{entry.file}{PARTIAL}")
            try:
                with zf.open(info) as src, open(tmp, "wb") as dst:  # zf.open checks the CRC at the end
                    shutil.copyfileobj(src, dst, CHUNK)
                os.replace(tmp, target)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            written += 1
            if on_file:
                on_file(1)
    os.makedirs(os.path.join(dest, STATE_DIR), exist_ok=True)
    with atomic_write(_record_path(dest, entry.file)) as f:
        json.dump({"file": entry.file, "size": entry.size, "sha256": entry.sha256, "skipped": other,
                   "members": [[rel, info.file_size, info.CRC] for info, rel in members]}, f)
    return written, other


# ---------------------------------------------------------------------------------------------------
# status and --check


@dataclass
class FileStatus:
    """Where one zip of the manifest stands in a data root."""

    entry: ZipEntry
    state: str  # "extracted" | "incomplete" | "downloaded" | "partial" | "corrupt" | "missing"
    detail: str = ""
    zip_bytes: int = 0  # bytes of this zip on disk, finished or partial
    incomplete_series: List[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.state == "extracted"


def _missing_members(dest: str, members: Sequence[Sequence]) -> Dict[str, int]:
    """Series folder -> number of its files missing or of the wrong size."""
    bad: Dict[str, int] = {}
    for rel, size, _crc in members:
        p = os.path.join(dest, rel)
        try:
            ok = os.path.getsize(p) == size
        except OSError:
            ok = False
        if not ok:
            series = rel.split("/")[1]
            bad[series] = bad.get(series, 0) + 1
    return bad


def _series_note(bad: Dict[str, int], limit: int = 5) -> str:
    names = [f"{s} ({n} file{'s' if n > 1 else ''})" for s, n in sorted(bad.items())]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    plural = "s" if len(bad) > 1 else ""
    return f"{len(bad)} series folder{plural} incomplete: {', '.join(names[:limit])}{more}"


def file_status(entry: ZipEntry, dest: str, verify: bool = True) -> FileStatus:
    """Classify ``entry`` in ``dest``; ``verify`` hashes a zip that is present (slow for 4.3 GB)."""
    zip_path = os.path.join(dest, entry.file)
    part = zip_path + PARTIAL
    on_disk = (os.path.getsize(zip_path) if os.path.isfile(zip_path)
               else os.path.getsize(part) if os.path.isfile(part) else 0)
    record = _read_record(dest, entry)
    if record is not None:
        bad = _missing_members(dest, record.get("members", []))
        if not bad:
            return FileStatus(entry, "extracted", f"{len(record.get('members', []))} files in {IMAGE_DIR}/",
                              zip_bytes=on_disk)
        status = FileStatus(entry, "incomplete", _series_note(bad), zip_bytes=on_disk,
                            incomplete_series=sorted(bad))
        if os.path.isfile(zip_path):
            status.detail += "; its zip is still here, a run re-extracts it"
        return status
    if os.path.isfile(zip_path):
        problem = verify_file(zip_path, entry) if verify else None
        if problem:
            return FileStatus(entry, "corrupt", problem, zip_bytes=on_disk)
        detail = "downloaded, not extracted yet"
        if verify:
            try:
                with zipfile.ZipFile(zip_path) as zf:
                    members = [(rel, i.file_size, i.CRC) for i, rel in _layout(zf)[0]]
                bad = _missing_members(dest, members)
                if bad:
                    detail += f" ({_series_note(bad)})"
            except zipfile.BadZipFile as err:
                return FileStatus(entry, "corrupt", f"not a DeepLesion zip: {err}", zip_bytes=on_disk)
        return FileStatus(entry, "downloaded", detail, zip_bytes=on_disk)
    if os.path.isfile(part):
        return FileStatus(entry, "partial", f"{on_disk:,} of {entry.size:,} bytes", zip_bytes=on_disk)
    return FileStatus(entry, "missing")


def check(entries: Sequence[ZipEntry], dest: str, progress: bool = True) -> List[FileStatus]:
    """Verify a data root without fetching: the state of each zip (hashing those present)."""
    statuses = []
    with _bar(progress, total=len(entries), desc="checking", unit="file") as bar:
        for e in entries:
            statuses.append(file_status(e, dest, verify=True))
            bar.update(1)
    return statuses


# ---------------------------------------------------------------------------------------------------
# disk space and the whole run


def disk_needed(statuses: Sequence[FileStatus], workers: int, keep_zips: bool) -> int:
    """Bytes the run still needs on disk at its peak.

    Every extraction still to do adds about the zip's size; zips still to download add their
    missing bytes, all of them with ``keep_zips``, otherwise only the ``workers`` largest at once.
    """
    todo = [s for s in statuses if not s.done]
    extract = sum(int(s.entry.size * EXTRACTED_PER_ZIP_BYTE) for s in todo)
    fetch = sorted((max(0, s.entry.size - s.zip_bytes) for s in todo), reverse=True)
    return extract + (sum(fetch) if keep_zips else sum(fetch[:max(1, workers)]))


def ensure_disk_space(dest: str, needed: int,
                      disk_usage: Callable[[str], Tuple[int, int, int]] = shutil.disk_usage) -> None:
    """Raise :class:`UserError` when the file system of ``dest`` has less than ``needed`` bytes free."""
    probe = os.path.abspath(dest)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    free = disk_usage(probe)[2]
    if free < needed:
        raise UserError(f"not enough disk space for {dest}: the run needs {needed / 1e9:,.1f} GB, "
                        f"{free / 1e9:,.1f} GB is free; free some space or fetch fewer zips with --files")


@contextlib.contextmanager
def _bar(enabled: bool, **kwargs) -> Iterator:
    if enabled:
        from tqdm import tqdm

        with tqdm(**kwargs) as bar:
            yield bar
    else:
        class _Null:
            def update(self, n: int = 1) -> None:
                pass

        yield _Null()


def download(entries: Sequence[ZipEntry], dest: str, *, workers: int = 2, keep_zips: bool = False,
             retries: int = 5, backoff: float = 2.0, timeout: float = 60.0, progress: bool = True,
             disk_usage: Callable[[str], Tuple[int, int, int]] = shutil.disk_usage,
             log: Optional[Callable[[str], None]] = None) -> List[FileStatus]:
    """Fetch, verify and extract every entry not yet extracted in ``dest``; return the final states.

    Files already extracted are skipped without touching the network. A zip already downloaded is
    verified and extracted; a partial one is resumed. Failures of single files do not stop the
    others; at the end one :class:`UserError` lists them all. Ctrl-C stops every worker at its next
    chunk (partial files kept) and re-raises ``KeyboardInterrupt``.
    """
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    if log is None:
        log = _bar_safe_print if progress else print
    dest = ensure_writable_dir(dest, what="--dest")
    before = [file_status(e, dest, verify=False) for e in entries]
    todo = [s for s in before if not s.done]
    for s in before:
        if s.done:
            log(f"{s.entry.file}: already extracted, skipped")
    if not todo:
        return before
    ensure_disk_space(dest, disk_needed(before, workers, keep_zips), disk_usage)
    os.makedirs(dest, exist_ok=True)

    pending = list(todo)
    lock = threading.Lock()
    stop = threading.Event()
    failures: Dict[str, str] = {}
    crashed: List[BaseException] = []
    opts = dict(keep_zips=keep_zips, retries=retries, backoff=backoff, timeout=timeout, progress=progress,
                stop=stop, log=log)
    have = sum(min(s.zip_bytes, s.entry.size) for s in todo)
    with _bar(progress, total=sum(s.entry.size for s in todo), initial=have, desc="total", unit="B",
              unit_scale=True, unit_divisor=1024, position=0) as total_bar:

        def worker(slot: int) -> None:  # slot: its tqdm row, row 0 is the total
            while not stop.is_set():
                with lock:
                    if not pending:
                        return
                    status = pending.pop(0)
                try:
                    _process(status, dest, slot, total_bar, **opts)
                except UserError as err:
                    failures[status.entry.file] = str(err)
                except Cancelled:
                    return
                except BaseException as err:  # a bug: stop everything and show it
                    crashed.append(err)
                    stop.set()
                    return

        # Daemon threads, so that Ctrl-C is not held up by a worker waiting on a stalled connection.
        threads = [threading.Thread(target=worker, args=(i + 1,), daemon=True)
                   for i in range(min(workers, len(todo)))]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)  # a timed join lets Ctrl-C through
        except KeyboardInterrupt:
            # Workers stop at their next chunk; one blocked on a stalled connection simply ends with
            # the process. Either way the partial file is a prefix of the zip, and PNGs in the making
            # have temporary names: the next run resumes.
            stop.set()
            raise
    if crashed:
        raise crashed[0]

    after = [file_status(e, dest, verify=False) for e in entries]
    if failures:
        raise UserError(f"{len(failures)} of {len(todo)} files failed: "
                        + "; ".join(failures[k] for k in sorted(failures)))
    return after


def _bar_safe_print(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(msg)


def _process(status: FileStatus, dest: str, slot: int, total_bar, *, keep_zips: bool, retries: int,
             backoff: float, timeout: float, progress: bool, stop: threading.Event,
             log: Callable[[str], None]) -> None:
    """One zip: verify or fetch it, extract it, remove it (unless ``keep_zips``)."""
    require("requests", "download", "downloading DeepLesion")
    import requests

    entry = status.entry
    zip_path = os.path.join(dest, entry.file)
    if os.path.isfile(zip_path):  # a finished download that was not extracted (completely)
        problem = verify_file(zip_path, entry)
        if problem:
            os.unlink(zip_path)
            total_bar.update(-min(status.zip_bytes, entry.size))
            raise ChecksumError(f"{entry.file}: the zip in {dest} does not match the manifest ({problem}); "
                                "removed it, run again to fetch it anew")
    else:
        with _bar(progress, total=entry.size, initial=status.zip_bytes, desc=entry.file, unit="B",
                  unit_scale=True, unit_divisor=1024, position=slot, leave=False) as bar:
            def on_bytes(n: int) -> None:
                bar.update(n)
                total_bar.update(n)

            with requests.Session() as session:
                fetch_zip(entry, zip_path, session, retries=retries, backoff=backoff, timeout=timeout,
                          on_bytes=on_bytes, stop=stop)
    with _bar(progress, desc=f"unzip {entry.file}", unit="file", position=slot, leave=False) as bar:
        written, other = extract_zip(zip_path, dest, entry, on_file=bar.update, stop=stop)
    if other:
        log(f"{entry.file}: skipped {len(other)} member(s) outside {IMAGE_DIR}/<series>/<file>: "
            f"{', '.join(other[:3])}{' ...' if len(other) > 3 else ''}")
    if not keep_zips:
        os.unlink(zip_path)
    log(f"{entry.file}: verified, {written} files extracted" + ("" if keep_zips else ", zip removed"))
