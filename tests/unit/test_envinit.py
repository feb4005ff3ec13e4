"""env.init: fresh secrets that pass the rules, placeholders replaced in step, never overwrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploytools.env import file as envfile
from deploytools.env.check import check_values
from deploytools.env.init import fill, generate_secret, init_env_file
from deploytools.errors import OperatorError
from deploytools.testing import MemoryHost
from tests.support.project_rules import ROOT, rules

TARGET = Path("/p/config/staging.env")
EXAMPLE = Path("/p/config/staging.env.example")


def host_with_example(name: str = "staging") -> MemoryHost:
    host = MemoryHost()
    host.files[str(EXAMPLE)] = (ROOT / f"config/{name}.env.example").read_bytes()
    return host


def test_generated_secrets_pass_their_rules_every_time() -> None:
    for _ in range(200):
        value = generate_secret("SECRET_KEY", rules("prod"))
        assert len(value) == 40
    assert len({generate_secret("POSTGRES_PASSWORD", rules("prod")) for _ in range(20)}) == 20


def test_the_password_placeholder_is_replaced_inside_the_database_url_too() -> None:
    example = envfile.parse((ROOT / "config/staging.env.example").read_bytes())
    doc, generated = fill(example, rules("staging"))
    values = doc.values()
    assert generated == ["SECRET_KEY", "POSTGRES_PASSWORD"]
    assert (
        values["DATABASE_URL"]
        == f"postgresql+psycopg://app:{values['POSTGRES_PASSWORD']}@postgres:5432/app"
    )
    assert "<" not in values["SECRET_KEY"]


def test_init_writes_mode_0600_keeps_comments_and_lists_what_is_left_to_fill() -> None:
    host = host_with_example()
    result = init_env_file(host, TARGET, EXAMPLE, rules("staging"))
    assert host.modes[str(TARGET)] == 0o600
    written = host.files[str(TARGET)].decode()
    assert written.startswith("# The staging environment")
    assert result.to_fill == ["OPENAI_API_KEY"]


def test_local_result_passes_validation() -> None:
    host = MemoryHost()
    host.files[str(EXAMPLE)] = (ROOT / "config/local.env.example").read_bytes()
    result = init_env_file(host, TARGET, EXAMPLE, rules("local"))
    doc = envfile.parse(host.files[str(TARGET)])
    assert result.to_fill == []
    assert doc.findings == []
    assert check_values(doc.values(), doc.line_of(), rules("local"), set()) == []


def test_an_existing_env_file_is_never_overwritten() -> None:
    host = host_with_example()
    host.files[str(TARGET)] = b"SECRET_KEY=precious\n"
    with pytest.raises(OperatorError) as caught:
        init_env_file(host, TARGET, EXAMPLE, rules("staging"))
    assert "already exists" in caught.value.problem
    assert host.files[str(TARGET)] == b"SECRET_KEY=precious\n"


def test_a_malformed_or_missing_example_is_refused() -> None:
    host = MemoryHost()
    with pytest.raises(OperatorError, match="not found"):
        init_env_file(host, TARGET, EXAMPLE, rules("staging"))
    host.files[str(EXAMPLE)] = b"A=1\nbroken\n"
    with pytest.raises(OperatorError, match=r"malformed lines \(2\)"):
        init_env_file(host, TARGET, EXAMPLE, rules("staging"))
    assert str(TARGET) not in host.files
