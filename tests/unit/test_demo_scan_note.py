"""The demo says why outcomes are "succeeded" when no scanner is installed (issue 11, item 7)."""

from __future__ import annotations

import shutil

import pytest

from patchprop_cli import demo


def test_without_trivy_the_demo_says_outcomes_are_succeeded_because_nothing_is_scanned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    note = demo.scan_note()
    assert note is not None
    assert '"succeeded"' in note and "trivy is not installed" in note and "not scanned" in note


def test_with_trivy_there_is_nothing_to_explain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    assert demo.scan_note() is None
