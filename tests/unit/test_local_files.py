"""LocalHost's atomic write leaves nothing behind, whenever a signal stops it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from deploytools.errors import Interrupted
from deploytools.hosts.local import LocalHost


@pytest.mark.parametrize("call", ["open", "fsync", "replace"])
def test_a_signal_during_a_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    """A signal that arrives during a system call is raised as the call returns: on the open
    that made the temp file, before its name was known to the code that removes it, an
    interrupted build left a ``.tmp`` in its release directory (the likely cause of a CI run's
    failed signal test)."""
    target = tmp_path / "settings.py"
    target.write_bytes(b"old\n")
    real = getattr(os, call)

    def signalled(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise Interrupted("SIGTERM")

    monkeypatch.setattr(os, call, signalled)
    with pytest.raises(Interrupted):
        LocalHost().write_file(str(target), b"new\n", mode=0o640)
    monkeypatch.undo()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["settings.py"]
    assert target.read_bytes() == (b"new\n" if call == "replace" else b"old\n")
