"""Translate template.yaml (AWS SAM) to plain CloudFormation, offline.

Runs what CloudFormation would run on deploy, in the same order, without an AWS account:
the ``Fn::ForEach`` part of ``AWS::LanguageExtensions`` (patchprop_local.template, which the
local stack reads the template with too), then the SAM transform of aws-sam-translator.
Parameters without a default get fake values (``FAKE_PARAMETERS``).

    python scripts/sam_to_cfn.py .patchprop/cfn.json [--template template.yaml]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.translator import Translator
from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template

# The local stack's template reader: the same YAML loading and Fn::ForEach expansion.
from patchprop_local.template import load_template, without_language_extensions

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


class OfflineManagedPolicyLoader(ManagedPolicyLoader):
    """Managed-policy names are never looked up in IAM: the template uses ARNs only."""

    def __init__(self) -> None:
        super().__init__(iam_client=None)

    def load(self) -> dict[str, str]:
        return {}


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
    template = _with_fake_artifacts(without_language_extensions(template, values))

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
