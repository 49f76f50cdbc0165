"""`patchprop local --base-checks`: BASE_CHECKS is checked before anything starts, naming the
entry and the field of a problem."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from patchprop_cli.main import checked_base_checks, cli


def test_a_bad_entry_stops_the_start_naming_the_entry_and_field(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be started or written here
    settings = {"docker.io/library/python:3.13": {"window_hours": -1}, "*": {}}
    result = CliRunner().invoke(cli, ["local", "--base-checks", json.dumps(settings)])
    assert result.exit_code == 2
    assert "BASE_CHECKS['docker.io/library/python:3.13'] window_hours" in result.output
    assert not (tmp_path / ".patchprop").exists()


def test_base_checks_read_from_a_file(tmp_path: Path) -> None:
    good = tmp_path / "checks.json"
    good.write_text('{"*": {"key": "ssm:/patchprop/cosign.pub", "severity": "CRITICAL"}}')
    assert checked_base_checks(f"@{good}") == good.read_text()
    bad = tmp_path / "bad.json"
    bad.write_text('{"*": {"key": "vault:secret/cosign"}}')
    result = CliRunner().invoke(cli, ["local", "--base-checks", f"@{bad}"])
    assert result.exit_code == 2 and "['*'] key: vault: is not a key reference" in result.output
    missing = CliRunner().invoke(cli, ["local", "--base-checks", f"@{tmp_path / 'none.json'}"])
    assert missing.exit_code == 2 and "none.json cannot be read" in missing.output


def test_a_value_is_checked_before_it_is_deployed(tmp_path: Path) -> None:
    good = CliRunner().invoke(
        cli, ["check-base-checks", '{"*": {"key": "awskms:///arn:aws:kms:eu-west-1:1:key/k"}}']
    )
    assert good.exit_code == 0 and "BaseChecks reads: 1 entry" in good.output
    bad = CliRunner().invoke(cli, ["check-base-checks", '{"dhi.io/python:3.13": {"mode": "later"}}'])
    assert bad.exit_code == 2 and "BASE_CHECKS['dhi.io/python:3.13'] mode" in bad.output
