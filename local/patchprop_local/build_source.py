"""Where a local build's source comes from: a local directory (copied) or a git repository
(cloned at its source version), as CodeBuild fetches a build's source before it runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import IO

GIT_PREFIXES = ("https://", "http://", "ssh://", "git://", "git@")
INSTALL_HINTS = {
    "buildah": "buildah not found: install it with apt-get install buildah",
    "git": "git not found: install it with apt-get install git",
}


class BuildFailed(Exception):
    """Ends a build FAILED, with this message as its last log line."""


def note(out: IO[bytes], text: str) -> None:
    """One line of the local CodeBuild's own in the build log."""
    out.write(f"[patchprop] {text}\n".encode())
    out.flush()


def check_tools() -> list[str]:
    """Install hints for the tools local builds need and this machine lacks."""
    return [hint for tool, hint in INSTALL_HINTS.items() if shutil.which(tool) is None]


def source_kind(location: str | None) -> tuple[str, str]:
    """How to fetch a source: ("NO_SOURCE" | "LOCAL" | "GIT", the path or URL to copy or clone)."""
    if not location:
        return "NO_SOURCE", ""
    path = Path(location.removeprefix("file://")).expanduser()
    if path.is_dir():
        is_repo = (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())
        return ("GIT" if is_repo else "LOCAL"), str(path)
    if location.startswith(GIT_PREFIXES) or location.endswith(".git"):
        return "GIT", location
    return "LOCAL", str(path)  # not there: the build fails saying so


def fetch_source(location: str | None, version: str | None, src: Path, out: IO[bytes]) -> Path:
    """The build's source at `src`: a copy of a local directory or a git checkout of `version`."""
    kind, where = source_kind(location)
    if kind == "NO_SOURCE":
        raise BuildFailed("build context not found: the dependent has no source location")
    if kind == "LOCAL":
        if not Path(where).is_dir():
            raise BuildFailed(f"build context {location} not found")
        note(out, f"copying build context {where}")
        try:
            shutil.copytree(where, src, symlinks=True)
        except OSError as exc:
            raise BuildFailed(f"build context {where} could not be read: {exc}") from exc
        return src
    if shutil.which("git") is None:
        raise BuildFailed(INSTALL_HINTS["git"])
    note(out, f"cloning {where}")
    _git(out, f"build context {where} not found or not cloneable", "clone", "--", where, str(src))
    if version:
        version = version.removeprefix("refs/heads/")
        note(out, f"checking out {version}")
        _git(out, f"source version {version} not found in {where}", "-C", str(src), "checkout", version)
    return src


def _git(out: IO[bytes], failure: str, *args: str) -> None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # a private repo fails instead of asking
    try:
        done = subprocess.run(
            ["git", *args], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, timeout=600, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise BuildFailed(f"{failure}: git timed out") from exc
    if done.returncode != 0:
        raise BuildFailed(failure)
