"""Read template.yaml: short-form intrinsics, `Fn::ForEach`, and the intrinsics the local stack resolves.

The template is the single source of truth: tests, the demo and `patchprop local` create
tables, queues, topics and secrets from its definitions (provision.py) and wire handlers from
its events, instead of keeping a second list. `Fn::ForEach` (AWS::LanguageExtensions) is
expanded here the way CloudFormation expands it, for the local stack and for
scripts/sam_to_cfn.py alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from patchprop_local import resources

REGION = "us-east-1"
ACCOUNT = "123456789012"

_TAGS = ["Ref", "Condition"]
_FNS = [
    "Sub",
    "Join",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "Select",
    "Split",
    "FindInMap",
    "Base64",
    "ImportValue",
    "GetAZs",
    "Cidr",
    "ToJsonString",
    "Length",
    "ForEach",
]


class _Loader(yaml.SafeLoader):
    pass


def _construct(tag: str):
    def build(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        if tag == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {tag if tag in _TAGS else f"Fn::{tag}": value}

    return build


for _tag in [*_TAGS, *_FNS, "GetAtt"]:
    _Loader.add_constructor(f"!{_tag}", _construct(_tag))


def load_template(path: Path | str | None = None) -> dict[str, Any]:
    """The template as a dict, short-form intrinsics turned into their long form (no expansion)."""
    with open(path or resources.template_path(), encoding="utf-8") as fh:
        template = yaml.load(fh, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(template, dict):
        raise ValueError(f"{path}: not a CloudFormation template")
    return template


# ---- Fn::ForEach (AWS::LanguageExtensions) ----------------------------------------------

LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
_FOR_EACH_PREFIX = "Fn::ForEach::"


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


def _logical_ids(node: Any) -> Any:
    """`!GetAtt [!Sub "${Queue}DLQ", Arn]` and `!Ref {Fn::Sub: ...}` once the loop filled the name in."""
    if isinstance(node, list):
        return [_logical_ids(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: _logical_ids(v) for k, v in node.items()}
    if set(node) == {"Fn::GetAtt"} and isinstance(node["Fn::GetAtt"], list):
        node["Fn::GetAtt"] = [_literal(node["Fn::GetAtt"][0]), *node["Fn::GetAtt"][1:]]
    elif set(node) == {"Ref"}:
        node["Ref"] = _literal(node["Ref"])
    return node


def _literal(value: Any) -> Any:
    sub = value.get("Fn::Sub") if isinstance(value, dict) and len(value) == 1 else None
    return sub if isinstance(sub, str) and "${" not in sub else value


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
            generated = expand_for_each(
                _logical_ids(_substitute(fragment, identifier, item)), parameter_values
            )
            for out_key, out_value in generated.items():
                if out_key in expanded:
                    raise ValueError(f"{key}: {out_key!r} generated twice")
                expanded[out_key] = out_value
    return expanded


def without_language_extensions(template: dict[str, Any], parameter_values: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation has it after AWS::LanguageExtensions ran (loops expanded)."""
    transforms = template.get("Transform", [])
    transforms = [transforms] if isinstance(transforms, str) else list(transforms)
    if LANGUAGE_EXTENSIONS not in transforms:
        return template
    result = expand_for_each(template, parameter_values)
    remaining = [name for name in transforms if name != LANGUAGE_EXTENSIONS]
    result["Transform"] = remaining[0] if len(remaining) == 1 else remaining
    return result


@dataclass
class Stack:
    """What was created for each logical id, and how to resolve intrinsics against it."""

    template: dict[str, Any]
    parameters: dict[str, Any]
    endpoint_url: str | None
    prefix: str
    refs: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, Any]:
        # A resource whose Condition is false (the Slack function without its secret) is not there.
        return {
            k: v
            for k, v in self.template["Resources"].items()
            if "Condition" not in v or self.condition(v["Condition"])
        }

    def of_type(self, kind: str) -> dict[str, Any]:
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}

    # ---- intrinsic functions ----------------------------------------------------------

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value if v != {"Ref": "AWS::NoValue"}]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                return self.attrs[arg[0]][arg[1]]
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self._sub_var(m.group(1), extra)), text)
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self.resolve(arg[1]))
            if key == "Fn::Split":
                return self.resolve(arg[1]).split(arg[0])
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
        return {k: self.resolve(v) for k, v in value.items()}

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.prefix,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        if name in self.resources:  # not stood up locally (API, roles, alarms): a stand-in id
            return f"local-{name}"
        raise KeyError(f"template.yaml: !Ref {name} names nothing this stack has")

    def _sub_var(self, name: str, extra: dict[str, Any]) -> Any:
        if name in extra:
            return extra[name]
        if "." in name:
            logical, attr = name.split(".", 1)
            return self.attrs[logical][attr]
        return self._ref(name)

    # ---- wiring read from the functions' events --------------------------------------

    def function_env(self, logical_id: str) -> dict[str, str]:
        """The function's environment variables (Globals merged in), resolved."""
        common = self.template.get("Globals", {}).get("Function", {}).get("Environment", {})
        own = self.resources[logical_id]["Properties"].get("Environment", {})
        merged = {**common.get("Variables", {}), **own.get("Variables", {})}
        return {k: str(self.resolve(v)) for k, v in merged.items()}

    def function_dir(self, logical_id: str) -> Path:
        return resources.function_dir(self.resources[logical_id]["Properties"]["CodeUri"])

    def events(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """(function logical id, resolved event properties) for every event of `kind`."""
        found = []
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            for event in resource["Properties"].get("Events", {}).values():
                if event["Type"] == kind:
                    found.append((logical_id, self.resolve(event.get("Properties", {}))))
        return found

    def queue_logical_id(self, arn: str) -> str:
        return next(k for k, a in self.attrs.items() if a.get("Arn") == arn)
