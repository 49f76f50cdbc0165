"""`patchprop status|report` over HTTP against the real API handler on moto, and the HTML report
rendered by headless Chromium: the figures it shows equal the JSON report's, and a screenshot
of the charts is kept (its path is printed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from test_cli_client import ApiServer
from test_report_api import APP, WORKER, seed_fleet

from patchprop.adapters.dynamodb import Store
from patchprop_cli.main import cli
from patchprop_cli.status_cmd import status_text

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def api(aws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ApiServer]:
    monkeypatch.chdir(tmp_path)
    with ApiServer(aws) as server:
        monkeypatch.setenv("PATCHPROP_API_URL", server.url)
        yield server


@pytest.fixture
def fleet(aws) -> Store:
    return seed_fleet(Store(aws.refs["PatchpropTable"]))


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_status_worst_first_plain_when_piped_and_behind_only(api: ApiServer, fleet: Store) -> None:
    result = run("status")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split("\t")[:2] == ["STATE", "IMAGE"]
    assert [line.split("\t")[:2] for line in lines[1:]] == [["behind", WORKER], ["current", APP]]
    assert "\x1b[" not in result.output  # no colour when not a terminal
    behind = run("status", "--behind", "--json")
    assert [i["image"] for i in json.loads(behind.output)["images"]] == [WORKER]


def test_status_on_a_terminal_is_aligned_and_coloured() -> None:
    images = [
        {
            "state": s,
            "image": f"r/{s}:1",
            "bases": [{"base": "b:1", "state": s, "built_on": None, "current": None}],
        }
        for s in ("behind", "current")
    ]
    text = status_text(images, terminal=True)
    assert "\x1b[31m\x1b[1mbehind\x1b[0m" in text and "\x1b[32mcurrent\x1b[0m" in text
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in text.splitlines()]
    assert len({line.index("r/") for line in plain[1:]}) == 1  # the IMAGE column lines up


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["report", "--since", "a month"], "is not a duration"),
        (["report", "--owner", "nobody"], "no registered image has owner 'nobody'"),
        (["status", "--owner", "nobody"], "no registered image has owner 'nobody'"),
    ],
)
def test_bad_input_is_a_usage_error(api: ApiServer, fleet: Store, args: list[str], says: str) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_report_as_text_and_json(api: ApiServer, fleet: Store) -> None:
    text = run("report", "--since", "7d")
    assert text.exit_code == 0, text.output
    assert "median 12 min" in text.output and "Coverage: 1 of 2 images current (50%)" in text.output
    as_json = json.loads(run("report", "--format", "json").output)
    assert as_json["time_to_patch"]["median_minutes"] == 12.0


class Figures(HTMLParser):
    """Each data-figure element's path and text, as the browser's DOM has them."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, tuple[str, str | None]] = {}
        self.charts: list[str] = []
        self._open: tuple[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if "data-figure" in named:
            self._open = (named["data-figure"] or "", named.get("data-unit"))
        if tag == "svg" and named.get("data-chart"):
            self.charts.append(named["data-chart"] or "")

    def handle_data(self, data: str) -> None:
        if self._open:
            self.found[self._open[0]] = (data, self._open[1])
            self._open = None


def lookup(report: dict[str, Any], path: str) -> Any:
    value: Any = report
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make system-deps installs it)")
def test_the_html_report_shows_the_json_reports_figures_in_chromium(
    api: ApiServer, fleet: Store, tmp_path: Path
) -> None:
    page, shot = tmp_path / "report.html", tmp_path / "report.png"
    assert run("report", "--format", "html", "-o", str(page)).exit_code == 0
    report = json.loads(run("report", "--format", "json").output)
    assert "http" not in re.sub(r'xmlns="http://www.w3.org/2000/svg"', "", page.read_text())  # no network
    url = page.as_uri()
    dom = subprocess.run(
        [str(CHROMIUM), *CHROMIUM_FLAGS, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    subprocess.run(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--screenshot={shot}", "--window-size=1280,1800", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    print(f"screenshot of the HTML report: {shot}")
    parser = Figures()
    parser.feed(dom)
    assert parser.charts == [
        "time to patch over time",
        "coverage over time",
        "outcomes per week",
        "slowest cascades",
    ]
    assert len(parser.found) >= 30
    for path, (shown, unit) in parser.found.items():
        expected = lookup(report, path)
        if expected is None:
            assert shown == "-", path
        elif unit == "%":
            assert float(shown.rstrip("%")) == pytest.approx(expected * 100), path
        else:
            assert float(shown) == pytest.approx(expected), path
    assert parser.found["time_to_patch.median_minutes"][0] == "12"
    assert shot.stat().st_size > 10_000
