"""Shipping releases to hosts, on the in-memory host: the exact commands, in their order.

The real transfers (sshd hosts, Docker engines of their own) are in
tests/integration/test_ship_release.py and test_ship_images.py.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from deploytools.errors import CommandError, DeployFailure, OperatorError
from deploytools.runtime.process import RELEASE_MARKER
from deploytools.runtime.ship import ReleasePlace, pipe, ship_images, ship_release
from deploytools.testing import MemoryHost

RELEASE = "release-prod-20261201T000000Z-abc1234"
PLACE = ReleasePlace("/srv/state/prod/releases", "/srv/app", ("var",))
FINAL = f"{PLACE.releases_dir}/{RELEASE}"


def archive(tmp_path: Path, files: dict[str, bytes]) -> Path:
    path = tmp_path / "release.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


class Receiver(MemoryHost):
    """Answers ``wc -c`` and ``openssl dgst`` about what ``feed`` received (``damage``: as if
    the last byte had been lost on the way)."""

    def __init__(self, damage: bool = False) -> None:
        super().__init__("web-2", self._answer)
        self.damage = damage

    def _answer(self, argv: list[str]) -> tuple[int, str]:
        data = self.fed[-1][1][: -1 if self.damage else None] if self.fed else b""
        if argv[0] == "wc":
            return 0, f"{len(data)} {argv[-1]}\n"
        if argv[0] == "openssl":
            return 0, f"{hashlib.sha256(data).hexdigest()} *{argv[-1]}\n"
        return 0, ""


def test_ship_release_uploads_checks_unpacks_then_renames(tmp_path: Path) -> None:
    tar = archive(tmp_path, {"app.py": b"print('hi')\n"})
    host = Receiver()
    prepared: list[tuple[str, int]] = []

    def prepare(code: str) -> None:
        prepared.append((code, len(host.commands)))

    shipped = ship_release(host, PLACE, RELEASE, tar, timeout=60, prepare=prepare)

    assert shipped.sent == [RELEASE] and shipped.bytes == tar.stat().st_size
    (receive, sent), = host.fed  # fmt: skip
    upload = receive[1].removeprefix("of=")
    assert upload.startswith(f"{PLACE.releases_dir}/.{RELEASE}.") and upload.endswith(".tar.part")
    assert sent == tar.read_bytes()
    partial = f"{FINAL}.partial"
    assert host.commands == [
        receive,
        ["openssl", "dgst", "-sha256", "-r", upload],
        ["tar", "-x", "-p", "--no-same-owner", "-f", upload, "-C", partial],
        ["mv", "--", partial, FINAL],
        # MemoryHost.remove is not a command: the upload is removed, as are stale leftovers
    ]
    assert host.links == {f"{partial}/var": "/srv/app/var"}
    assert prepared == [(partial, 3)]  # after tar, before mv (a venv link: see ReleaseVenvs)
    assert host.files[f"{partial}/{RELEASE_MARKER}"] == RELEASE.encode()  # written before mv
    assert upload not in host.files


def test_a_host_that_has_the_release_is_skipped(tmp_path: Path) -> None:
    host = Receiver()
    host.files[f"{FINAL}/{RELEASE_MARKER}"] = RELEASE.encode()
    shipped = ship_release(host, PLACE, RELEASE, archive(tmp_path, {"a": b"1"}), timeout=60)
    assert (shipped.sent, shipped.present) == ([], [RELEASE])
    assert host.commands == [] and host.fed == []


def test_a_marker_of_another_release_is_no_release(tmp_path: Path) -> None:
    host = Receiver()
    host.files[f"{FINAL}/{RELEASE_MARKER}"] = b"something-else"
    shipped = ship_release(host, PLACE, RELEASE, archive(tmp_path, {"a": b"1"}), timeout=60)
    assert shipped.sent == [RELEASE]


def test_a_damaged_upload_is_never_unpacked(tmp_path: Path) -> None:
    host = Receiver(damage=True)
    with pytest.raises(DeployFailure, match="arrived damaged on web-2") as caught:
        ship_release(host, PLACE, RELEASE, archive(tmp_path, {"a": b"12"}), timeout=60)
    assert "nothing was unpacked" in str(caught.value)
    assert not any(argv[0] in ("tar", "mv") for argv in host.commands)
    assert not host.exists(FINAL) and not host.exists(f"{FINAL}.partial")
    assert not [f for f in host.files if f.endswith(".tar.part")]


@pytest.mark.parametrize("name", [".env", "config/.env", "config/prod.env"])
def test_an_archive_with_an_env_file_is_refused(tmp_path: Path, name: str) -> None:
    host = Receiver()
    tar = archive(tmp_path, {"app.py": b"", name: b"SECRET=x\n"})
    with pytest.raises(OperatorError, match=f"holds env file.*{name}"):
        ship_release(host, PLACE, RELEASE, tar, timeout=60, env_files=["config/prod.env"])
    assert host.commands == [] and host.fed == []


def engine(name: str, images: dict[str, str]) -> MemoryHost:
    """A host whose engine has ``images`` (name -> id) and loads what it is fed: ``ids``."""

    def answer(argv: list[str]) -> tuple[int, str]:
        if argv[1:3] == ["image", "inspect"]:
            found = images.get(argv[-1])
            return (0, f"{found}\n") if found else (1, f"No such image: {argv[-1]}")
        if argv[1:3] == ["image", "save"]:
            return 0, "TAR:" + ",".join(argv[3:])
        if argv[1:3] == ["image", "load"]:
            for image in host.fed[-1][1].decode().removeprefix("TAR:").split(","):
                images[image] = SOURCE_IDS[image]
        return 0, ""

    host = MemoryHost(name, answer)
    return host


SOURCE_IDS = {"shop/web:r1": "sha256:aaa", "shop/worker:r1": "sha256:bbb"}


def test_only_the_images_a_host_lacks_or_has_under_another_id_are_sent() -> None:
    source = engine("build", dict(SOURCE_IDS))
    target = engine("web-2", {"shop/web:r1": "sha256:old"})
    shipped = ship_images(source, target, list(SOURCE_IDS), timeout=60)
    assert shipped.sent == ["shop/web:r1", "shop/worker:r1"]
    assert target.fed == [
        (["docker", "image", "load", "--quiet"], b"TAR:shop/web:r1,shop/worker:r1")
    ]

    again = ship_images(source, target, list(SOURCE_IDS), timeout=60)
    assert (again.sent, again.present) == ([], list(SOURCE_IDS))
    assert len(target.fed) == 1


def test_a_partly_equipped_host_gets_only_what_it_lacks() -> None:
    source = engine("build", dict(SOURCE_IDS))
    target = engine("web-2", {"shop/web:r1": "sha256:aaa"})
    shipped = ship_images(source, target, list(SOURCE_IDS), timeout=60)
    assert (shipped.sent, shipped.present) == (["shop/worker:r1"], ["shop/web:r1"])
    assert ["docker", "image", "save", "shop/worker:r1"] in source.commands


def test_an_image_the_source_lacks_is_said_before_anything_is_sent() -> None:
    source = engine("build", {"shop/web:r1": "sha256:aaa"})
    target = engine("web-2", {})
    with pytest.raises(DeployFailure, match="shop/worker:r1 are not on build"):
        ship_images(source, target, list(SOURCE_IDS), timeout=60)
    assert target.fed == []


def test_a_load_that_leaves_another_id_fails() -> None:
    source = engine("build", dict(SOURCE_IDS))
    target = MemoryHost("web-2", lambda argv: (1, "") if "inspect" in argv else (0, ""))
    with pytest.raises(DeployFailure, match="after loading, web-2 has shop/web:r1"):
        ship_images(source, target, ["shop/web:r1"], timeout=60)


def test_pipe_names_both_sides_when_both_fail() -> None:
    source = MemoryHost("a", lambda argv: (1, "write /dev/stdout: broken pipe"))
    target = MemoryHost("b", lambda argv: (1, "no space left on device"))
    with pytest.raises(DeployFailure) as caught:
        pipe(source, ["produce"], target, ["consume"], timeout=5)
    assert "broken pipe" in str(caught.value) and "no space left on device" in str(caught.value)


def test_pipe_blames_the_consumer_alone_when_the_producer_succeeded() -> None:
    source = MemoryHost("a", lambda argv: (0, "data"))
    target = MemoryHost("b", lambda argv: (1, "bad input"))
    with pytest.raises(CommandError, match="`consume` on b exited 1"):
        pipe(source, ["produce"], target, ["consume"], timeout=5)
    assert target.fed == [(["consume"], b"data")]
