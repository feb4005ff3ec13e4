"""argv and output parsing of the coreutils the backup code runs on a host."""

from __future__ import annotations

import pytest

from deploytools.commands import fs
from deploytools.errors import DeployFailure


def test_free_space() -> None:
    assert fs.free_space("/b") == ["df", "-P", "-k", "--", "/b"]
    out = "Filesystem 1024-blocks Used Available Capacity Mounted on\ntmpfs 2048 12 2036 1% /b\n"
    assert fs.parse_free_space(out) == 2036 * 1024


def test_free_space_garbage_is_a_clear_failure() -> None:
    with pytest.raises(DeployFailure, match="cannot read free space"):
        fs.parse_free_space("df: /b: No such file or directory")


def test_sha256_both_output_styles_and_spaces_in_paths() -> None:
    assert fs.sha256(["/b/a", "/b/c d"]) == ["openssl", "dgst", "-sha256", "-r", "/b/a", "/b/c d"]
    assert fs.sha256_coreutils(["/b/a"]) == ["sha256sum", "--", "/b/a"]
    out = f"{'a' * 64}  /b/a\n{'b' * 64} */b/c d\n"
    assert fs.parse_sha256(out) == {"/b/a": "a" * 64, "/b/c d": "b" * 64}


def test_byte_counts_without_the_total_line() -> None:
    assert fs.byte_counts(["/b/a"]) == ["wc", "-c", "--", "/b/a"]
    out = "  12 /b/a\n 300 /b/c d\n 312 total\n"
    assert fs.parse_byte_counts(out) == {"/b/a": 12, "/b/c d": 300}


def test_move_and_make_private() -> None:
    assert fs.move("/b/.x.partial", "/b/x") == ["mv", "--", "/b/.x.partial", "/b/x"]
    assert fs.make_private("/b/x") == ["chmod", "-R", "go-rwx", "--", "/b/x"]


def test_receive_and_unpack_a_release_archive() -> None:
    assert fs.receive("/r/.x.tar.part") == [
        "dd", "of=/r/.x.tar.part", "bs=1M", "conv=fsync", "status=none"
    ]  # fmt: skip
    assert fs.unpack("/r/.x.tar.part", "/r/x.partial") == [
        "tar", "-x", "-p", "--no-same-owner", "-f", "/r/.x.tar.part", "-C", "/r/x.partial"
    ]  # fmt: skip
