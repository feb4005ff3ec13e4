"""The app's feature flags, read through deploytools' standard-library client.

``deploytools.flagclient`` reads the flagd file named by DEPLOYTOOLS_FLAGS_FILE (deploytools
writes it; compose mounts its directory read-only), looks at it at most every 200 ms without a
thread, and falls back to FEATURE_<NAME>, then off. The backend and the worker ask the same
function, so a user gets the same checkout from either.
"""

from __future__ import annotations

from deploytools.flagclient import is_enabled

NEW_CHECKOUT = "new_checkout"
LLM_SUMMARIES = "llm_summaries"


def checkout_for(user: str | None) -> str:
    """Which checkout ``user`` gets: "new" when the flag is on for them (a percentage buckets
    the user id: the same user keeps their answer, and stays in as it grows), else "classic"."""
    return "new" if is_enabled(NEW_CHECKOUT, key=user) else "classic"


def summary_for(user: str | None) -> str:
    """How a long thread is summed up for ``user``: by the LLM when the flag is on for them,
    else by its first lines."""
    return "llm" if is_enabled(LLM_SUMMARIES, key=user) else "first-lines"
