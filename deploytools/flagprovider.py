"""An OpenFeature provider over deploytools' flag file, for apps that use OpenFeature.

    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from deploytools.flagprovider import FlagFileProvider

    api.set_provider_and_wait(FlagFileProvider())  # the file named by DEPLOYTOOLS_FLAGS_FILE
    flags = api.get_client()
    flags.get_boolean_value("new_checkout", False, EvaluationContext(targeting_key=user_id))

It answers what ``deploytools.flagclient`` answers (``FlagClient.resolve``: the same evaluator,
the same re-read at most every 200 ms without a thread, the same fallback to ``FEATURE_<NAME>``)
and reports how: reason STATIC (on/off), TARGETING_MATCH (a percentage bucketed the key),
DEFAULT (a percentage without a targeting key: the default variant), DISABLED; the flag's
metadata (stage, who, when) as flag metadata. A flag neither the file nor the variable has is
FLAG_NOT_FOUND (reason ERROR) and the SDK returns the caller's default, as it does for a value
that is not boolean (TYPE_MISMATCH). The flags are boolean: asking for a string, number or
object is TYPE_MISMATCH. Needs ``openfeature-sdk`` (``pip install 'deploytools[openfeature]'``
or ``--no-deps`` beside the SDK); nothing else of deploytools is imported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagMetadata, FlagResolutionDetails, FlagValueType
from openfeature.provider import AbstractProvider, Metadata

from deploytools.flagclient import CHECK_INTERVAL, FLAGS_FILE_VAR, FlagClient

T = TypeVar("T")
NAME = "deploytools flag file"


class FlagFileProvider(AbstractProvider):
    """Boolean flags from a flagd file (``path``, default ``$DEPLOYTOOLS_FLAGS_FILE``; without
    either, the ``FEATURE_<NAME>`` variables alone)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = CHECK_INTERVAL,
    ) -> None:
        super().__init__()
        env = os.environ if environ is None else environ
        found = env.get(FLAGS_FILE_VAR, "") if path is None else path
        self.client = FlagClient(found, environ=env, clock=clock, interval=interval)

    def get_metadata(self) -> Metadata:
        return Metadata(name=NAME)

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        context = evaluation_context or EvaluationContext()
        found = self.client.resolve(flag_key, context.targeting_key, context.attributes)
        metadata: FlagMetadata = {
            k: v for k, v in found.metadata.items() if isinstance(v, bool | int | float | str)
        }
        if found.value is None:
            return FlagResolutionDetails(
                default_value,
                error_code=ErrorCode(found.error) if found.error else None,
                error_message=found.message or None,
                reason=found.reason,
                flag_metadata=metadata,
            )
        return FlagResolutionDetails(
            found.value, reason=found.reason, variant=found.variant, flag_metadata=metadata
        )

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        return _not_boolean(flag_key, default_value)

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        return _not_boolean(flag_key, default_value)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return _not_boolean(flag_key, default_value)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return _not_boolean(flag_key, default_value)


def _not_boolean(flag_key: str, default_value: T) -> FlagResolutionDetails[T]:
    return FlagResolutionDetails(
        default_value,
        error_code=ErrorCode.TYPE_MISMATCH,
        error_message=f"flag {flag_key!r}: deploytools flags are boolean (get_boolean_value)",
        reason="ERROR",
    )
