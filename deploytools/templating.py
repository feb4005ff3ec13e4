"""``{NAME}`` placeholders in config values (probe URLs, process commands), filled from data.

The values usually come from the environment's env file, so ``url = "http://127.0.0.1:{PORT}/"``
follows whatever port the env file sets. A placeholder with no value is an operator error that
names the config key and the missing name; ``{{`` and ``}}`` stand for literal braces.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from deploytools.errors import OperatorError


def fill(
    template: str, values: Mapping[str, str], *, where: str, source: str = "the env file"
) -> str:
    """``template`` with every ``{NAME}`` replaced; ``where`` names the config key in errors."""
    out: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise OperatorError(
            f"{where}: bad placeholder in {template!r}: {exc}", "write {NAME}, or {{ }} for braces"
        ) from None
    for literal, field, spec, conversion in parsed:
        out.append(literal)
        if field is None:
            continue
        if spec or conversion or not field:
            raise OperatorError(
                f"{where}: placeholder {{{field}}} in {template!r} is not a plain name",
                "write {NAME} with a key of the env file",
            )
        if field not in values:
            raise OperatorError(
                f"{where} uses {{{field}}}, but {field} is not set in {source}",
                f"add {field}=... to {source} or change {where}",
            )
        out.append(values[field])
    return "".join(out)
