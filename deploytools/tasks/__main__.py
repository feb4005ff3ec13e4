"""The ``deploytools`` command (and ``python -m deploytools.tasks``): invoke with deploytools'
namespace and no ``tasks.py`` needed. It is what a tool install (``pipx install deploytools``,
``uv tool install deploytools``) puts on PATH, so deploytools lives in an environment of its
own beside the app's, and a project that has no ``tasks.py`` yet can run ``init`` to write one."""

import os
import sys

from invoke.program import Program

from deploytools import __version__
from deploytools.tasks import ns


def main() -> None:
    try:
        Program(namespace=ns, name="deploytools", version=__version__).run()
    except BrokenPipeError:  # `deploytools --list | head`: the reader is gone, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
