"""Translate template.yaml (AWS SAM) to plain CloudFormation, offline.

Runs what CloudFormation would run on deploy, in the same order, without an AWS account:
the ``Fn::ForEach`` part of ``AWS::LanguageExtensions``, then the SAM transform of
aws-sam-translator. Parameters without a default get fake values (``FAKE_PARAMETERS``).

    python scripts/sam_to_cfn.py .patchprop/cfn.json [--template template.yaml]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import boto3
import yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.translator import Translator
from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template
from samtranslator.yaml_helper import intrinsics_multi_constructor

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
FAKE_REGION = "us-east-1"
# Values for parameters that have no default. Two projects, one with characters that
# logical IDs cannot hold, so the Fn::ForEach expansion is exercised for real.
FAKE_PARAMETERS: dict[str, Any] = {
    "RebuildProjects": "patchprop-rebuild,golden_images",
}

FAKE_ARTIFACT_BUCKET = "patchprop-offline-artifacts"
# Local code paths that `sam package` would replace with S3 URIs.
_LOCAL_CODE_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}

LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
_FOR_EACH_PREFIX = "Fn::ForEach::"


class _CfnYamlLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short-form intrinsics (!Ref, !Sub, ...)."""


# On a private subclass: samtranslator's own yaml_parse registers this on yaml.SafeLoader,
# which would change yaml.safe_load for everything else in the process.
_CfnYamlLoader.add_multi_constructor("!", intrinsics_multi_constructor)


class OfflineManagedPolicyLoader(ManagedPolicyLoader):
    """Managed-policy names are never looked up in IAM: the template uses ARNs only."""

    def __init__(self) -> None:
        super().__init__(iam_client=None)

    def load(self) -> dict[str, str]:
        return {}


def load_template(template_path: Path | str) -> dict[str, Any]:
    """Read a CloudFormation/SAM YAML template into plain dicts (long-form intrinsics)."""
    text = Path(template_path).read_text(encoding="utf-8")
    template = yaml.load(text, Loader=_CfnYamlLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(template, dict):
        raise ValueError(f"{template_path}: not a CloudFormation template")
    return template


def _substitute(node: Any, identifier: str, value: str) -> Any:
    """Replace one Fn::ForEach identifier in keys, strings and Refs, as CloudFormation does."""
    alphanumeric = re.sub(r"[^A-Za-z0-9]", "", value)

    def in_string(text: str) -> str:
        return text.replace("${" + identifier + "}", value).replace("&{" + identifier + "}", alphanumeric)

    if isinstance(node, dict):
        if node == {"Ref": identifier}:
            return value
        return {in_string(k): _substitute(v, identifier, value) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(item, identifier, value) for item in node]
    if isinstance(node, str):
        return in_string(node)
    return node


def _collection(spec: Any, parameter_values: dict[str, Any], loop: str) -> list[str]:
    if isinstance(spec, dict) and set(spec) == {"Ref"}:
        value = parameter_values.get(spec["Ref"])
        if value is None:
            raise ValueError(f"{loop}: no value for parameter {spec['Ref']!r}")
        spec = value.split(",") if isinstance(value, str) else value
    if not isinstance(spec, list) or not all(isinstance(item, str) for item in spec):
        raise ValueError(f"{loop}: the collection must be a list of strings or a Ref to one")
    return [item.strip() for item in spec]


def expand_for_each(node: Any, parameter_values: dict[str, Any]) -> Any:
    """Expand every ``Fn::ForEach::<Loop>`` key, the way AWS::LanguageExtensions does."""
    if isinstance(node, list):
        return [expand_for_each(item, parameter_values) for item in node]
    if not isinstance(node, dict):
        return node
    expanded: dict[str, Any] = {}
    for key, value in node.items():
        if not key.startswith(_FOR_EACH_PREFIX):
            expanded[key] = expand_for_each(value, parameter_values)
            continue
        if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)):
            raise ValueError(f"{key}: expected [Identifier, Collection, {{OutputKey: OutputValue}}]")
        identifier, collection, fragment = value
        for item in _collection(collection, parameter_values, key):
            generated = expand_for_each(_substitute(fragment, identifier, item), parameter_values)
            for out_key, out_value in generated.items():
                if out_key in expanded:
                    raise ValueError(f"{key}: {out_key!r} generated twice")
                expanded[out_key] = out_value
    return expanded


def _without_language_extensions(
    template: dict[str, Any], parameter_values: dict[str, Any]
) -> dict[str, Any]:
    transforms = template.get("Transform", [])
    transforms = [transforms] if isinstance(transforms, str) else list(transforms)
    if LANGUAGE_EXTENSIONS not in transforms:
        return template
    result = expand_for_each(template, parameter_values)
    remaining = [name for name in transforms if name != LANGUAGE_EXTENSIONS]
    result["Transform"] = remaining[0] if len(remaining) == 1 else remaining
    return result


def _with_fake_artifacts(template: dict[str, Any]) -> dict[str, Any]:
    """Point local CodeUri/ContentUri paths at S3, as `sam package` does before deploy."""
    for resource in template.get("Resources", {}).values():
        prop = _LOCAL_CODE_PROPERTIES.get(resource.get("Type", ""))
        properties = resource.get("Properties", {})
        uri = properties.get(prop) if prop else None
        if prop and isinstance(uri, str) and not uri.startswith("s3://"):
            properties[prop] = f"s3://{FAKE_ARTIFACT_BUCKET}/{uri.strip('/')}.zip"
    return template


def translate(
    template_path: Path | str = DEFAULT_TEMPLATE,
    parameter_values: dict[str, Any] | None = None,
    region: str = FAKE_REGION,
) -> dict[str, Any]:
    """Return the CloudFormation that template_path becomes on deploy (fake parameter values)."""
    template = load_template(template_path)
    values = {**FAKE_PARAMETERS, **(parameter_values or {})}
    for name, definition in template.get("Parameters", {}).items():
        if name not in values and isinstance(definition, dict) and "Default" in definition:
            values[name] = definition["Default"]
    template = _with_fake_artifacts(_without_language_extensions(template, values))

    # What samtranslator.translator.transform.transform() does, but with an explicit boto
    # session: transform() takes the region from the AWS configuration, and there is none.
    to_py27_compatible_template(template, values)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    translated = translator.translate(
        template,
        parameter_values=values,
        get_managed_policy_map=OfflineManagedPolicyLoader().load,
    )
    return undo_mark_unicode_str_in_template(translated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("output", type=Path, help="where to write the CloudFormation JSON")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    args = parser.parse_args(argv)
    # samtranslator warns about every feature flag missing from its (empty) offline config.
    logging.getLogger("samtranslator.feature_toggle").setLevel(logging.ERROR)
    cfn = translate(args.template)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(cfn, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.output} ({len(cfn.get('Resources', {}))} resources)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
