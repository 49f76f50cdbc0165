"""The layer's runtime requirements and the package's dependencies say the same thing."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# In pyproject only: boto3 comes with the Lambda runtime; click and dockerfile serve the CLI.
NOT_IN_THE_LAYER = {"boto3", "click", "dockerfile"}


def layer_requirements() -> dict[str, Requirement]:
    lines = (ROOT / "layers" / "shared" / "requirements.txt").read_text().splitlines()
    found = [Requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return {canonicalize_name(r.name): r for r in found}


def package_dependencies() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}


def test_every_layer_requirement_is_a_dependency_that_admits_its_pinned_version():
    # Given the layer's pins and the package's ranges
    package = package_dependencies()
    for name, pinned in layer_requirements().items():
        # Then each pin is one exact version the package's range admits, with the same extras
        (spec,) = pinned.specifier
        assert spec.operator == "==", f"{name}: the layer pins exact versions"
        assert name in package, f"{name} is in the layer but not in pyproject.toml"
        assert package[name].specifier.contains(spec.version), f"{name}=={spec.version} outside pyproject"
        assert package[name].extras == pinned.extras, f"{name}: extras differ"


def test_every_runtime_dependency_is_in_the_layer_or_named_as_not_needed_there():
    assert set(package_dependencies()) - set(layer_requirements()) == NOT_IN_THE_LAYER


def test_the_check_catches_a_pin_outside_the_range():
    # Given a range and a pin it does not admit
    package, pinned = Requirement("pydantic>=2.11,<3"), Requirement("pydantic==3.0.0")
    # Then the comparison the test makes says so
    (spec,) = pinned.specifier
    assert not package.specifier.contains(spec.version)
