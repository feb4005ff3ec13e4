"""How long shipping a release takes, without a registry.

Process runtime: a release archive (a synthetic app_dir: ``--files`` files, ``--mb`` MB in all)
shipped to 1 host, then to 4 hosts at once (one thread each), against the same files written
one SFTP call each (what the Build step does on a remote host today). Compose runtime: an
image of about ``--image-mb`` MB (``FROM scratch`` and one random file) streamed from the
shared engine to a host with its own engine over sshd, and the second ship that finds it
there. Each figure is the median of ``--runs``. Run as root after provisioning:
`python bench/ship.py`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploytools.codetree import code_entries, write_archive
from deploytools.hosts.local import LocalHost
from deploytools.hosts.ssh import SshHost
from deploytools.runtime.ship import ReleasePlace, ship_images, ship_release
from tests.support.docker_engine import DockerEngine
from tests.support.extra_engine import ExtraEngine
from tests.support.sshd import SshHosts

RELEASE = "release-bench-20261201T000000Z-0000000"


def median(runs: int, once: Callable[[int], float]) -> str:
    times = [once(i) for i in range(runs)]
    return f"{statistics.median(times):6.2f}s (runs: {', '.join(f'{t:.2f}' for t in times)})"


def make_repo(root: Path, files: int, megabytes: float) -> None:
    size = int(megabytes * 2**20 / files)
    for i in range(files):
        path = root / "app" / f"pkg{i % 20}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_hex(size // 2).encode())
    for argv in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "b"],
    ):
        subprocess.run(argv, cwd=root, check=True, capture_output=True, timeout=120)  # fmt: skip


def bench_archive(hosts: SshHosts, args: argparse.Namespace, scratch: Path) -> None:
    make_repo(scratch, args.files, args.mb)
    archive = scratch / "release.tar"
    write_archive(LocalHost(), scratch, "app", [], archive)
    targets = [hosts.make(f"bench-{i}") for i in range(4)]
    remotes = [t.connect() for t in targets]
    for remote in remotes:
        remote.run(["true"])  # connected before timing, as a deploy's earlier steps leave it

    def ship(count: int) -> Callable[[int], float]:
        def once(run: int) -> float:
            started = time.perf_counter()
            with ThreadPoolExecutor(count) as pool:
                done = list(pool.map(
                    lambda th: ship_release(th[1], ReleasePlace(
                        f"{th[0].root}/n{count}r{run}/releases", f"{th[0].root}/app"),
                        RELEASE, archive, timeout=600),
                    list(zip(targets, remotes, strict=True))[:count]))  # fmt: skip
            assert all(s.sent for s in done)
            return time.perf_counter() - started

        return once

    def per_file(run: int) -> float:
        started = time.perf_counter()
        entries = code_entries(LocalHost(), scratch, "app", [])
        base = f"{targets[0].root}/sftp{run}"
        for entry in entries:
            if entry.data is None:
                remotes[0].makedirs(f"{base}/{entry.path}")
            else:
                remotes[0].write_file(f"{base}/{entry.path}", entry.data, 0o640)
        return time.perf_counter() - started

    print(f"archive: {args.files} files, {archive.stat().st_size / 2**20:.1f} MB tar")
    print(f"  ship to 1 host            {median(args.runs, ship(1))}")
    print(f"  ship to 4 hosts (threads) {median(args.runs, ship(4))}")
    print(f"  1 host, SFTP per file     {median(args.runs, per_file)}")
    for remote in remotes:
        remote.close()


def bench_image(hosts: SshHosts, args: argparse.Namespace, scratch: Path) -> None:
    context = scratch / "image"
    context.mkdir()
    (context / "blob").write_bytes(os.urandom(args.image_mb * 2**20))
    (context / "Dockerfile").write_text("FROM scratch\nCOPY blob /blob\n")
    image = f"dt-bench-ship-{secrets.token_hex(4)}:r1"
    subprocess.run(["docker", "build", "-q", "-t", image, str(context)], check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    controller = LocalHost("controller")
    try:
        with ExtraEngine() as engine:
            remote = hosts.make("bench-dock", environment=engine.env).connect()

            def once(run: int) -> float:
                engine.docker("image", "rm", image)
                started = time.perf_counter()
                shipped = ship_images(controller, remote, [image], timeout=600)
                assert shipped.sent == [image]
                return time.perf_counter() - started

            print(f"image: {args.image_mb} MB, FROM scratch")
            print(f"  ship to 1 host            {median(args.runs, once)}")

            def again(run: int) -> float:
                started = time.perf_counter()
                assert ship_images(controller, remote, [image], timeout=600).sent == []
                return time.perf_counter() - started

            print(f"  ship again (nothing sent) {median(args.runs, again)}")
            print(f"  {layered(controller, remote, image, context)}")
            remote.close()
    finally:
        subprocess.run(["docker", "image", "rm", image], capture_output=True, timeout=120)


def layered(controller: LocalHost, remote: SshHost, image: str, context: Path) -> str:
    """A next release: one small layer over the image the host has. ``docker save`` cannot
    leave out the layers the host already has: what is sent is the whole image again."""
    (context / "Dockerfile").write_text(f"FROM {image}\nCOPY small /small\n")
    (context / "small").write_bytes(os.urandom(2**20))
    (context / "blob").unlink()
    child = image.replace(":r1", ":r2")
    subprocess.run(["docker", "build", "-q", "-t", child, str(context)], check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    try:
        started = time.perf_counter()
        shipped = ship_images(controller, remote, [child], timeout=600)
        took = time.perf_counter() - started
    finally:
        subprocess.run(["docker", "image", "rm", child], capture_output=True, timeout=120)
    return (
        f"next release (+1 MB layer, base present): {shipped.bytes / 2**20:.1f} MB sent"
        f" in {took:.2f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--mb", type=float, default=8.0)
    parser.add_argument("--image-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dt-bench-ship-") as scratch, SshHosts() as hosts:
        bench_archive(hosts, args, Path(scratch))
        with DockerEngine():
            bench_image(hosts, args, Path(scratch))


if __name__ == "__main__":
    main()
