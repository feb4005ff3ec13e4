"""Backup ids, manifests and finding a backup: what is refused before anything is touched."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone

import pytest

from deploytools import db
from deploytools.db.manifest import Manifest, check_id, new_id
from deploytools.errors import DeployFailure, OperatorError
from deploytools.ui import Ui
from tests.support.backups import journal_for
from tests.support.dbhost import BACKUPS, URL, FakeDbHost, quiet_ui, settings

WHEN = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_ids_are_utc_sortable_and_carry_a_safe_release_name() -> None:
    assert new_id("prod", WHEN) == "prod-20250304T050607Z"
    local = WHEN.astimezone(timezone(timedelta(hours=2)))
    assert new_id("prod", local, "release/v1.2 rc") == "prod-20250304T050607Z-release_v1.2_rc"
    assert check_id(new_id("prod", WHEN, "v1")) == "prod-20250304T050607Z-v1"


def test_a_deploys_backup_id_adds_only_the_commit_of_its_release_tag() -> None:
    tag = "release-prod-20250304T050600Z-1a2b3c4"  # its time is not the backup's
    assert new_id("prod", WHEN, tag) == "prod-20250304T050607Z-1a2b3c4"
    assert new_id("my-prod", WHEN, "release-my-prod-20250304T050600Z-1a2b3c4").endswith("Z-1a2b3c4")
    old = "prod-20250304T050607Z-release-prod-20250304T050600Z-1a2b3c4"  # as ids were made
    assert check_id(old) == old


@pytest.mark.parametrize(
    "bad", ["", "prod", "../prod-20250304T050607Z", "prod-20250304T050607Z/../../x", "prod-2025-x"]
)
def test_anything_else_is_not_a_backup_id(bad: str) -> None:
    with pytest.raises(OperatorError, match="is not a backup id"):
        check_id(bad)


def test_a_damaged_manifest_is_named() -> None:
    with pytest.raises(OperatorError, match=r"manifest /b/x\.json is damaged"):
        Manifest.from_json(b'{"id": 1}', "/b/x.json")


def test_unknown_backup_is_refused_with_the_listing_hint() -> None:
    host = FakeDbHost()
    with pytest.raises(OperatorError) as caught:
        db.restore(
            settings(),
            host,
            quiet_ui(),
            journal_for(settings(), host),
            "test-20250304T050607Z",
            url=URL,
        )
    assert "no backup 'test-20250304T050607Z'" in caught.value.problem
    assert "invoke db.backups --env test" in caught.value.fix
    assert host.commands == []


def test_a_tampered_archive_is_refused_before_the_restore_runs() -> None:
    host = FakeDbHost()
    manifest = db.backup(settings(), host, quiet_ui(), journal_for(settings(), host), url=URL)
    host.files[f"{BACKUPS}/{manifest.archive}"] = b"PGDMP archive bytez"  # same size, one byte off
    host.commands.clear()
    err = io.StringIO()
    with pytest.raises(DeployFailure, match="does not match its manifest"):
        db.restore(
            settings(),
            host,
            Ui(stderr=err, stdout=io.StringIO()),
            journal_for(settings(), host),
            manifest.id,
            url=URL,
        )
    assert "pg_restore" not in [c[0] for c in host.commands]
    assert "Sup3r" not in err.getvalue()


def test_a_second_backup_in_the_same_second_gets_its_own_id() -> None:
    host = FakeDbHost()
    store_ids = {
        db.backup(settings(), host, quiet_ui(), journal_for(settings(), host), url=URL).id
        for _ in range(3)
    }
    assert len(store_ids) == 3
    assert all(check_id(i) for i in store_ids)
