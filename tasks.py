"""invoke entry point: the whole namespace comes from the installed deploytools package."""

from deploytools.tasks import ns

__all__ = ["ns"]
