"""deploytools' own wheel in the example's wheelhouse: the example's image installs it with
``--no-deps`` (the app imports ``deploytools.flagclient`` alone, standard library only).

Built from this checkout's package files, copied to a temporary directory first (a build in
the checkout would leave ``build/`` there). Made again only when the client or
``pyproject.toml`` changed, so that the image's dependency layer stays cached while the rest
of deploytools changes (the app uses nothing else of it).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEYED = ("deploytools/flagclient.py", "pyproject.toml")
PACKAGE = ("pyproject.toml", "README.md", "deploytools_canary.py", "deploytools")
STAMP = ".deploytools-wheel"


def ensure(wheelhouse: Path) -> str:
    """Put a current deploytools wheel in ``wheelhouse``; says what it did."""
    key = hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in KEYED)).hexdigest()
    stamp = wheelhouse / STAMP
    have = sorted(wheelhouse.glob("deploytools-*.whl"))
    if have and stamp.exists() and stamp.read_text().strip() == key:
        return f"{have[0].name} up to date"
    with tempfile.TemporaryDirectory(prefix="deploytools-wheel-") as tmp:
        source = Path(tmp) / "src"
        for name in PACKAGE:
            if (ROOT / name).is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(ROOT / name, source / name, ignore=ignore)
            else:
                source.mkdir(exist_ok=True)
                shutil.copy2(ROOT / name, source / name)
        out = Path(tmp) / "out"
        pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir"]
        done = subprocess.run(
            [*pip, str(out), str(source)], capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"pip wheel of deploytools failed:\n{done.stderr[-2000:]}")
        (built,) = out.glob("deploytools-*.whl")
        for old in have:
            old.unlink()
        wheelhouse.mkdir(parents=True, exist_ok=True)
        shutil.move(built, wheelhouse / built.name)
    stamp.write_text(key + "\n")
    return f"built {built.name}"
