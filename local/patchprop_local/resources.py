"""The files the local stack reads: template.yaml, buildspec.yml, buildspec/rebuild.sh, functions/.

They ship inside this package (`patchprop_local/data/`, symbolic links to the repository's own
files in a checkout, copies in a wheel), so `patchprop local` runs from an installed wheel as it
does from a checkout. Where the package has no data (a source tree whose links were lost), the
repository the package sits in is used instead.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import as_file, files
from pathlib import Path

# The repository root when this package runs from a checkout (editable installs, tests, the demo).
CHECKOUT = Path(__file__).resolve().parents[2]


@cache
def data_dir() -> Path:
    """The folder holding template.yaml, buildspec.yml, buildspec/ and functions/."""
    packaged = files("patchprop_local") / "data"
    with as_file(packaged) as path:  # a real folder: wheels are installed unpacked
        if (path / "template.yaml").is_file():
            return Path(path)
    if (CHECKOUT / "template.yaml").is_file():
        return CHECKOUT
    raise FileNotFoundError(f"patchprop_local: no template.yaml in {packaged} nor in {CHECKOUT}")


def template_path() -> Path:
    return data_dir() / "template.yaml"


def buildspec_path() -> Path:
    return data_dir() / "buildspec.yml"


def rebuild_script() -> Path:
    """buildspec/rebuild.sh, the script the CodeBuild buildspec and the local CodeBuild run."""
    return data_dir() / "buildspec" / "rebuild.sh"


def function_dir(code_uri: str) -> Path:
    """The folder of a function's handler (`app.py`), from its CodeUri (`functions/<name>/`)."""
    return data_dir() / code_uri
