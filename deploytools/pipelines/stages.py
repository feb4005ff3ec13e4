"""Groups of steps deploy and rollback share: a release made here, on every host, or on the
primary and shipped from there (streamed engine to engine, or through a registry); the roll
out; the checks that run together."""

from __future__ import annotations

from deploytools.pipeline.engine import Stage, Together
from deploytools.site import Site
from deploytools.steps.base import Step
from deploytools.steps.common import Start, VerifyCelery, WaitHealthy, healthy_again
from deploytools.steps.deploy import Build
from deploytools.steps.hosts import OnHosts, Retire
from deploytools.steps.rollback import PrepareRelease
from deploytools.steps.ship import PlaceComposeFiles, PullImages, PushImages, ShipImages


def made(step: Step, remote: bool, ship_images: bool) -> list[Stage]:
    """``step`` (the build, a rollback's prepare) here; on every host at once; or on the
    primary, and what it made shipped from there to the other hosts, which then need neither
    a checkout nor a build (compose: images go engine to engine)."""
    if ship_images:
        shipped = OnHosts(
            "ship images", [ShipImages(), PlaceComposeFiles()], rolling=False, others=True
        )
        return [step, shipped]
    return [OnHosts(step.name, [step], rolling=False, with_primary=True) if remote else step]


def pushed() -> list[Stage]:
    """Built on the primary, pushed from there to the registry once, pulled by the other
    hosts (with the compose files and env file they need, as when streamed)."""
    pulled = OnHosts("pull images", [PullImages(), PlaceComposeFiles()], rolling=False, others=True)
    return [Build(), PushImages(), pulled]


def pulled_back() -> list[Stage]:
    """A rollback's images through the registry: every host that lacks one by id, the
    primary first, pulls the digest recorded with the release; then the primary prepares
    it (its config, a tag given back) and the others get its compose files."""
    pulled = OnHosts("pull images", [PullImages()], rolling=False, with_primary=True)
    placed = OnHosts("place compose files", [PlaceComposeFiles()], rolling=False, others=True)
    return [pulled, PrepareRelease(), placed]


def registry_of(site: Site) -> str | None:
    conf = site.settings.compose
    return conf.registry.url if conf is not None and conf.registry is not None else None


def rolled() -> list[Stage]:
    """Start and wait healthy host by host as the rollout policy says (the hosts not yet
    switched run the old code on the new schema meanwhile: the lint keeps that safe); then,
    every host switched, what a host's roles no longer give it is stopped (``Retire``); then
    the Celery workers of every host at once, all on the new release."""
    rollout = OnHosts("roll out", [Start(), WaitHealthy()], rolling=True, verify_back=healthy_again)
    return [rollout, OnHosts("retire", [Retire()], rolling=False), VerifyCelery()]


def checks() -> Together:
    """Health and Celery at once: the backend and the workers start together and boot apart,
    so the two waits overlap instead of adding up. Both only look, and stop when told to:
    steps that run commands (a backup, a build) stay in line, since a command in a thread
    would outlive a SIGTERM."""
    return Together((WaitHealthy(), VerifyCelery()))
