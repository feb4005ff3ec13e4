"""Which release runs, by the journal: the last good one, unless an undo was abandoned since."""

from deploytools.release import current_release


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
