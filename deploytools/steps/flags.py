"""The feature flags in a deploy or rollback: the environment's flag state goes on to every
host of the run as it is, and into the release record."""

from __future__ import annotations

from typing import Any

from deploytools.errors import DeployFailure
from deploytools.steps.base import RunContext


class KeepFlags:
    """Copy the flag state of record (the primary's file, as the last ``flags.*`` change left
    it) to every other host of the run before the release starts there: a host that missed a
    change, or joined since, gets it. The state lives beside the releases, not in them, so a
    new release never brings back a killed flag; the release record keeps what it was.

    Under the flags lock, so a kill at that moment is either copied or made after the copy."""

    name = "keep flags"

    def plan(self, ctx: RunContext) -> list[str]:
        others = self._others(ctx)
        where = f"{ctx.site.host_names[0]}:{ctx.site.flags_file(ctx.site.host_names[0])}"
        copied = f"copy it to {', '.join(others)}" if others else "record it"
        return [f"read the flag state {where}; {copied}"]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from deploytools.flags import publish, state

        site = ctx.site
        with publish.flags_lock(site, "deploy: keep flags"):
            current = state.read(site.primary, site.flags_file(site.host_names[0]))
            if current is None:
                return {"flags": "none set: the apps read their FEATURE_* variables"}
            failed = publish.write_all(site, current, self._others(ctx))
        if failed:
            raise DeployFailure(
                "the flag state did not reach "
                + "; ".join(f"{name}: {error}" for name, error in failed.items()),
                "a host would serve with flags other than the environment's: reach it and "
                "deploy again",
            )
        ctx.facts.flags = {name: value.percent for name, value in current.flags.items()}
        ctx.facts.flags_stage = current.stage
        return {"flags": ctx.facts.flags, "stage": current.stage, "copied_to": self._others(ctx)}

    @staticmethod
    def _others(ctx: RunContext) -> list[str]:
        return [name for name in ctx.host_names if name != ctx.site.host_names[0]]
