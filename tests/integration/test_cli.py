"""The `patchprop` command: register writes the dependent and its edges; bad input names the option."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from patchprop.store import Store
from patchprop_cli.main import cli

pytestmark = pytest.mark.integration


def test_register_writes_a_dependent_that_planning_finds(aws):
    table = aws.refs["PatchpropTable"]
    result = CliRunner().invoke(
        cli,
        [
            "register",
            "--table",
            table,
            "--image",
            "acme/app:1",
            "--base",
            "node:22",
            "--base",
            "dhi.io/python:3.13",
            "--project",
            "patchprop-rebuild",
            "--owner",
            "team-a",
            "--build-arg",
            "PY=3.13",
        ],
    )
    assert result.exit_code == 0, result.output
    store = Store(table)
    assert [d.image for d in store.dependents_of("docker.io/library/node:22")] == ["docker.io/acme/app:1"]
    assert [d.build_args for d in store.dependents_of("dhi.io/python:3.13")] == [{"PY": "3.13"}]
    assert sorted(b.ref for b in store.list_bases()) == ["dhi.io/python:3.13", "docker.io/library/node:22"]


def test_reregistering_with_fewer_bases_removes_the_old_edge(aws):
    table = aws.refs["PatchpropTable"]
    base_args = ["register", "--table", table, "--image", "acme/app:1", "--project", "patchprop-rebuild"]
    CliRunner().invoke(cli, [*base_args, "--base", "node:22", "--base", "node:24"])
    CliRunner().invoke(cli, [*base_args, "--base", "node:24"])
    store = Store(table)
    assert list(store.dependents_of("docker.io/library/node:22")) == []
    assert [d.image for d in store.dependents_of("docker.io/library/node:24")] == ["docker.io/acme/app:1"]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--image", "Bad:x", "--base", "node:22", "--project", "p1"], "--image"),
        (["--image", "a/b:1", "--base", "node@sha256:" + "a" * 64, "--project", "p1"], "--base"),
        (["--image", "a/b:1", "--base", "node:22", "--project", "bad project"], "--project"),
        (
            ["--image", "a/b:1", "--base", "node:22", "--project", "p1", "--build-arg", "NOEQUALS"],
            "--build-arg",
        ),
    ],
)
def test_bad_input_names_the_option_and_writes_nothing(aws, args, option):
    table = aws.refs["PatchpropTable"]
    result = CliRunner().invoke(cli, ["register", "--table", table, *args])
    assert result.exit_code == 2
    assert f"Invalid value for {option}" in result.output
    assert list(Store(table).list_bases()) == []
