"""The wheel ships what `patchprop local` reads, and the package finds it wherever it is installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from patchprop_local import resources

REPO = resources.CHECKOUT
SHIPPED = [
    "patchprop_local/data/template.yaml",
    "patchprop_local/data/buildspec.yml",
    "patchprop_local/data/buildspec/rebuild.sh",
    *(f"patchprop_local/data/functions/{d.name}/app.py" for d in sorted((REPO / "functions").iterdir())),
]
# Where each lookup of resources.py points, printed by a fresh interpreter.
LOOKUP = """
import sys
sys.path.insert(0, sys.argv[1])
from patchprop_local import resources, template
print(resources.__file__)
print(resources.template_path())
print(resources.rebuild_script())
print(resources.function_dir("functions/webhook/") / "app.py")
print(sorted(template.load_template()["Resources"])[0])
"""


# What the wheel is built from (a copy: a build leaves build/ and *.egg-info in its source).
SOURCES = [
    "pyproject.toml",
    "layers",
    "cli",
    "local",
    "template.yaml",
    "buildspec.yml",
    "buildspec",
    "functions",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel, and what its build printed."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy(REPO / name, source / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = out.glob("patchprop-*.whl")
    return wheel, done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(built: tuple[Path, str]) -> Path:
    return built[0]


def lookup(site: Path, cwd: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", LOOKUP, str(site)], cwd=cwd, capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


def test_the_wheel_ships_the_template_buildspec_script_and_handlers(wheel: Path) -> None:
    # Given the wheel built from this checkout
    # When its file list is read
    names = set(zipfile.ZipFile(wheel).namelist())
    # Then every file the local stack reads is in it, as a file (not a link)
    assert set(SHIPPED) <= names, sorted(set(SHIPPED) - names)
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("patchprop_local/data/template.yaml")
    assert shipped == (REPO / "template.yaml").read_bytes()


def test_the_build_warns_of_no_package_it_would_ignore(built: tuple[Path, str]) -> None:
    # Given the wheel built from this checkout (what `make venv` does, editable, on a first run)
    # Then setuptools printed none of its pages of "Package would be ignored" warnings
    _, printed = built
    assert "BuildBackendWarning" not in printed and "would be ignored" not in printed, printed[:2000]


def test_an_installed_copy_reads_its_own_files(wheel: Path, tmp_path: Path) -> None:
    # Given the wheel unpacked as an installer would, away from any checkout
    site = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(site)
    # When a fresh interpreter looks the files up from that copy
    module, template, script, handler, first = lookup(site, cwd=tmp_path)
    # Then every path is inside the installed package, and the template reads
    assert module.startswith(str(site))
    for path in (template, script, handler):
        assert path.startswith(str(site / "patchprop_local" / "data")), path
        assert Path(path).is_file()
    assert first  # a logical id: the template was parsed


def test_a_package_without_its_data_falls_back_to_the_checkout_around_it(tmp_path: Path) -> None:
    # Given the package's modules in a checkout-shaped tree, without their data folder
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "local" / "patchprop_local", checkout / "local" / "patchprop_local", symlinks=True)
    shutil.rmtree(checkout / "local" / "patchprop_local" / "data")
    shutil.copy(REPO / "template.yaml", checkout / "template.yaml")
    (checkout / "buildspec").mkdir()
    shutil.copy(REPO / "buildspec" / "rebuild.sh", checkout / "buildspec" / "rebuild.sh")
    shutil.copytree(REPO / "functions", checkout / "functions")
    # When the files are looked up
    _, template, script, handler, _ = lookup(checkout / "local", cwd=tmp_path)
    # Then they are the checkout's
    assert (template, script, handler) == (
        str(checkout / "template.yaml"),
        str(checkout / "buildspec" / "rebuild.sh"),
        str(checkout / "functions" / "webhook" / "app.py"),
    )
