"""docs drift: a service the project's documents name that the production compose files lack
(the seeds' README promised a Celery worker the production file did not have): a warning.

A word counts as a service's name when some compose file of the project (production or
development) or the config names such a service; the documents are the README files and
``docs/`` of the project root and of the compose directory."""

from __future__ import annotations

import re
from pathlib import Path

from deploytools.gate import composefile
from deploytools.gate.checks.compose import development_files, is_compose, production
from deploytools.gate.project import Project
from deploytools.gate.registry import Item, register

DOC_SUFFIXES = (".md", ".rst", ".txt", ".adoc")


@register("docs-drift", applies=is_compose)
def check_docs(project: Project, env: str | None) -> list[Item]:
    """Services named in the README/docs that the production compose files lack (warnings)."""
    assert env is not None
    settings = project.settings(env)
    assert settings.compose is not None
    data, paths = production(project, settings)
    prod = set(composefile.services(data))
    directory = settings.path(settings.compose.directory)
    known = set(settings.services) | prod
    for path in development_files(directory, paths):
        known |= set(composefile.services(composefile.read(path, project.shown(path))))
    missing = sorted(known - prod)
    items = []
    for doc in _documents(project.root, directory):
        text = doc.read_text(encoding="utf-8", errors="replace")
        for service in missing:
            if match := re.search(rf"(?<![\w.-]){re.escape(service)}(?![\w-])", text):
                line = text.count("\n", 0, match.start()) + 1
                items.append(
                    Item(
                        env,
                        "warn",
                        f"{project.shown(doc)} names service {service!r}, which the production "
                        "compose files lack: add the service, or correct the document",
                        f"{project.shown(doc)}:{line}",
                    )
                )
    if not items:
        shown = ", ".join(project.shown(p) for p in paths)
        items.append(Item(env, "pass", "no document names a service these files lack", shown))
    return items


def _documents(*tops: Path) -> list[Path]:
    found: dict[Path, None] = {}
    for top in tops:
        for path in [*top.glob("README*"), *(top / "docs").rglob("*")]:
            if path.is_file() and path.suffix.lower() in DOC_SUFFIXES:
                found[path.resolve()] = None
    return list(found)
