"""The bucketing rule: murmur3 as the mmh3 package computes it, flagd's fractional buckets,
sticky and monotone percentages, flags independent of each other."""

import json
import random
from pathlib import Path

import mmh3
import pytest

from deploytools.flagclient import FlagClient, fractional, in_rollout, murmur3_32
from deploytools.flags.bucketing import TEST_VALUES, flag_bucket, targeting

KEYS = [f"user-{i}" for i in range(10_000)]


def test_murmur3_is_mmh3_unsigned_for_every_tail_length_and_seed() -> None:
    rng = random.Random(14)
    for length in range(0, 41):
        for seed in (0, 1, 86028157, 2**32 - 1):
            data = rng.randbytes(length)
            assert murmur3_32(data, seed) == mmh3.hash(data, seed, signed=False), (length, seed)


@pytest.mark.parametrize(("flag", "key", "hashed", "bucket"), TEST_VALUES)
def test_the_published_test_values(flag: str, key: str, hashed: int, bucket: int) -> None:
    assert mmh3.hash(flag + key, signed=False) == hashed  # the values are the field's murmur3
    assert murmur3_32((flag + key).encode()) == hashed
    assert flag_bucket(flag, key) == bucket == (hashed * 100) >> 32


def test_fractional_takes_weights_in_order_over_their_total() -> None:
    # Weights that do not sum to 100: bucket = (hash * total) >> 32, first cumulative above it.
    for key in KEYS[:500]:
        point = (mmh3.hash("f" + key, signed=False) * 7) >> 32
        expected = "a" if point < 1 else "b" if point < 4 else "c"
        assert fractional("f" + key, [("a", 1), ("b", 3), ("c", 3)]) == expected
    assert fractional("fx", [("a", 0), ("b", 0)]) is None  # flagd gives no variant


def test_ten_percent_is_about_a_tenth_and_inside_fifty() -> None:
    at_10 = {k for k in KEYS if in_rollout("new-checkout", k, 10)}
    at_50 = {k for k in KEYS if in_rollout("new-checkout", k, 50)}
    assert 800 <= len(at_10) <= 1200
    assert 4700 <= len(at_50) <= 5300
    assert at_10 <= at_50
    assert at_10 == {k for k in KEYS if flag_bucket("new-checkout", k) < 10}  # "on" first


def test_flags_bucket_independently() -> None:
    a = {k for k in KEYS if in_rollout("new-checkout", k, 50)}
    b = {k for k in KEYS if in_rollout("llm-summaries", k, 50)}
    assert 2250 <= len(a & b) <= 2750  # about a quarter: no correlation between flags


def test_no_key_is_never_in_a_partial_rollout() -> None:
    assert not in_rollout("new-checkout", None, 99)
    assert not in_rollout("new-checkout", "", 99)
    assert in_rollout("new-checkout", None, 100)
    assert not in_rollout("new-checkout", "user-1", 0)


def test_the_targeting_deploytools_writes_answers_as_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    flag = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
    path.write_text(json.dumps({"flags": {"new-checkout": flag | {"targeting": targeting(30)}}}))
    client = FlagClient(path, environ={})
    for key in KEYS[:2000]:
        assert client.is_enabled("new-checkout", key) == (flag_bucket("new-checkout", key) < 30)
