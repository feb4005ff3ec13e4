"""Which release runs, by the journal: the last good one, unless an undo was abandoned since."""

from deploytools.release import (
    current_release,
    looks_like_release,
    record_of,
    recorded_images,
    rollback_targets,
)


def test_the_last_good_release_runs_through_failed_ones_after_it() -> None:
    records = [
        {"tag": "a", "result": "ok"},
        {"tag": "b", "result": "ok"},
        {"tag": "c", "result": "failed", "undone": ["start: release b started again"]},
    ]
    assert current_release(records) is records[1]  # by identity: `releases` marks it so


def test_after_an_abandoned_undo_the_journal_does_not_know() -> None:
    records = [
        {"tag": "a", "result": "ok"},
        {"tag": "c", "result": "failed", "undo_abandoned": []},  # only the check was left
    ]
    assert current_release(records) is None
    assert current_release([*records, {"tag": "d", "result": "ok"}]) == {"tag": "d", "result": "ok"}


def test_a_release_is_built_from_the_commit_any_of_its_records_names() -> None:
    records = [
        {"kind": "release", "tag": "a", "sha": "1" * 40, "result": "ok"},
        {"kind": "release", "tag": "b", "sha": "2" * 40, "result": "failed"},
        {"kind": "release", "tag": "a", "result": "ok"},  # from before records named commits
    ]
    assert record_of(records, "a") is records[0]
    assert record_of(records, "b") is records[1]
    assert record_of(records, "dev") is None


def test_the_recorded_images_are_those_of_the_last_good_record_or_a_later_rebuild() -> None:
    deploy = {"kind": "release", "tag": "a", "result": "ok", "images": {"app:a": "sha256:1"}}
    failed = {"kind": "release", "tag": "a", "result": "failed", "images": {"app:a": "sha256:2"}}
    rebuilt = {"kind": "images", "tag": "a", "images": {"app:a": "sha256:3"}}
    other = {"kind": "images", "tag": "b", "images": {"app:b": "sha256:4"}}
    assert recorded_images([deploy, failed, other], "a") == {"app:a": "sha256:1"}
    assert recorded_images([deploy, failed, rebuilt, other], "a") == {"app:a": "sha256:3"}
    assert recorded_images([failed], "a") == {}


def test_names_shaped_like_an_environments_release_tags_are_the_deploys_own() -> None:
    assert looks_like_release("prod", "release-prod-20261121T101500Z-1a2b3c4")
    assert not looks_like_release("prod", "release-staging-20261121T101500Z-1a2b3c4")
    assert not looks_like_release("prod", "dev")


def test_a_rollback_returns_to_a_healthy_deploy_other_than_the_running_one() -> None:
    records = [
        {"tag": "r1", "result": "ok"},
        {"tag": "r2", "result": "failed"},
        {"tag": "r3", "result": "ok"},
        {"tag": "r1", "action": "rollback", "result": "ok"},  # r1 runs now
    ]
    assert rollback_targets(records, "r1") == ["r3"]
    assert rollback_targets(records, None) == ["r1", "r3"]
