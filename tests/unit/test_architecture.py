"""The layer's architecture, checked: dependencies point inward, modules and handlers stay short.

domain (no I/O) <- ports <- logic <- wiring/config/web <- functions; adapters implement ports and
may use domain, never logic.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "shared"
PACKAGE = LAYER / "patchprop"
MAX_MODULE_LINES = 350
MAX_HANDLER_LINES = 40

IO_LIBRARIES = ("boto3", "botocore", "requests")
# Which imports each part may not make (prefix match on the imported module's name).
FORBIDDEN = {
    "patchprop.domain": (
        "patchprop.logic",
        "patchprop.adapters",
        "patchprop.ports",
        "patchprop.wiring",
        "patchprop.config",
        "patchprop.web",
        *IO_LIBRARIES,
        "aws_lambda_powertools",
    ),
    "patchprop.ports": ("patchprop.logic", "patchprop.adapters", "patchprop.wiring", *IO_LIBRARIES),
    "patchprop.logic": ("patchprop.adapters", "patchprop.wiring", "patchprop.config", *IO_LIBRARIES),
    "patchprop.adapters": ("patchprop.logic", "patchprop.wiring", "patchprop.api"),
    "patchprop.api": ("patchprop.adapters", *IO_LIBRARIES),
}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(LAYER).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imported(path: Path, name: str) -> Iterator[str]:
    """Every module `path` imports, absolute, including the ones under TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield module
            # `from patchprop import wiring` imports the module patchprop.wiring
            yield from (f"{module}.{alias.name}" for alias in node.names)


def outward(name: str, path: Path) -> list[str]:
    rules = [bad for part, bad in FORBIDDEN.items() if name == part or name.startswith(part + ".")]
    found = []
    for module in imported(path, name):
        for banned in (b for bad in rules for b in bad):
            if module == banned or module.startswith(banned + "."):
                found.append(module)
    return sorted(set(found))


@pytest.mark.parametrize(("name", "path"), list(modules()), ids=[n for n, _ in modules()])
def test_imports_point_inward(name: str, path: Path) -> None:
    assert outward(name, path) == []


def test_the_check_sees_an_outward_import(tmp_path: Path) -> None:
    # Given a domain module that imports an adapter and boto3
    bad = tmp_path / "bad.py"
    bad.write_text("import boto3\nfrom patchprop.adapters import sqs\nfrom patchprop.domain import refs\n")
    # Then both are reported, the inward one is not
    assert outward("patchprop.domain.bad", bad) == ["boto3", "patchprop.adapters", "patchprop.adapters.sqs"]


def test_only_adapters_import_io_libraries() -> None:
    offenders = {
        name: [m for m in imported(path, name) if m.split(".")[0] in IO_LIBRARIES]
        for name, path in modules()
        if not name.startswith("patchprop.adapters")
    }
    assert {n: m for n, m in offenders.items() if m} == {}


def test_modules_are_short() -> None:
    # The layer, the CLI, the local stack, the scripts and the benchmarks: every module is one thing.
    folders = ("layers/shared/patchprop", "functions", "cli", "local/patchprop_local", "scripts", "bench")
    paths = [p for folder in folders for p in (ROOT / folder).rglob("*.py") if "data" not in p.parts]
    lengths = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in paths}
    long = {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES}
    assert len(lengths) > 50  # it found the modules
    assert long == {}


def handler_functions() -> Iterator[tuple[str, ast.FunctionDef]]:
    for path in sorted((ROOT / "functions").glob("*/app.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                yield f"{path.parent.name}.{node.name}", node


def test_handlers_are_thin() -> None:
    long = {
        name: length
        for name, node in handler_functions()
        if (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_HANDLER_LINES
    }
    assert long == {}
