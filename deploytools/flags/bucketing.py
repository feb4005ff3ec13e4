"""The published bucketing rule, and the flagd rule that expresses a percentage.

A key is in a ``P`` % rollout of flag ``F`` when ``(murmur3_x86_32(F + key, seed 0, unsigned)
* 100) >> 32 < P``: flagd's ``fractional`` with the weights ``[["on", P], ["off", 100 - P]]``,
"on" first, so every key in at 10 % is in at 50 %, and each flag buckets its keys on its own.
The arithmetic lives in ``deploytools.flagclient`` (the app's side, standard library only) so
that the state deploytools writes and the answer an app reads can never drift apart.
"""

from __future__ import annotations

from typing import Any

from deploytools.flagclient import bucket, in_rollout, murmur3_32

__all__ = ["TEST_VALUES", "bucket", "flag_bucket", "in_rollout", "murmur3_32", "targeting"]

# (flag, key, hash, bucket) that any implementation of the rule must give (the tests check
# them against the mmh3 package); the README states them.
TEST_VALUES = (
    ("new-checkout", "user-1", 1954156369, 45),
    ("new-checkout", "user-2", 986941360, 22),
    ("new-checkout", "user-3", 3312559254, 77),
    ("llm-summaries", "user-1", 1408828009, 32),
    ("new-checkout", "Zoë", 654518012, 15),  # UTF-8 bytes are hashed
)


def flag_bucket(flag: str, key: str) -> int:
    """The bucket (0..99) of ``key`` for ``flag``: it is in at every percentage above it."""
    return bucket(f"{flag}{key}")


def targeting(percent: int) -> dict[str, Any]:
    """The flagd ``targeting`` of a ``percent`` rollout (0 < percent < 100)."""
    return {"fractional": [["on", percent], ["off", 100 - percent]]}
