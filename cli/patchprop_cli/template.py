"""Read template.yaml and stand its resources up against an AWS endpoint (moto).

The template is the single source of truth: tests, the demo and `patchprop local` create
tables, queues, topics and secrets from its definitions and wire handlers from its events,
instead of keeping a second list.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
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


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as a dict, short-form intrinsics turned into their long form."""
    with open(path) as fh:
        return yaml.load(fh, Loader=_Loader)  # noqa: S506 - SafeLoader subclass


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
        # Fn::ForEach blocks (IAM policies per project) make nothing that runs locally; a resource
        # whose Condition is false (the Slack function without its secret) is not there.
        return {
            k: v
            for k, v in self.template["Resources"].items()
            if not k.startswith("Fn::ForEach::") and ("Condition" not in v or self.condition(v["Condition"]))
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
        return ROOT / self.resources[logical_id]["Properties"]["CodeUri"]

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


def provision(
    parameters: dict[str, Any] | None = None,
    *,
    endpoint_url: str | None = None,
    prefix: str = "patchprop",
    template: dict[str, Any] | None = None,
) -> Stack:
    """Create the template's tables, queues, topics and secrets; return how to reach them."""
    template = template or load_template()
    params = {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}
    params.update(parameters or {})
    for name, spec in template.get("Parameters", {}).items():
        if spec.get("Type") == "CommaDelimitedList" and isinstance(params[name], str):
            params[name] = [p.strip() for p in params[name].split(",") if p.strip()]
    stack = Stack(template, params, endpoint_url, prefix)

    def client(service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=endpoint_url)  # type: ignore[call-overload]

    _create_tables(stack, client("dynamodb"))
    _create_queues(stack, client("sqs"))
    for logical_id in stack.of_type("AWS::SNS::Topic"):
        arn = client("sns").create_topic(Name=f"{prefix}-{logical_id}")["TopicArn"]
        stack.refs[logical_id] = arn
        stack.attrs[logical_id] = {"TopicArn": arn, "TopicName": f"{prefix}-{logical_id}"}
    for logical_id, resource in stack.of_type("AWS::SecretsManager::Secret").items():
        value = _secret_value(resource["Properties"])
        arn = client("secretsmanager").create_secret(Name=f"{prefix}/{logical_id}", SecretString=value)["ARN"]
        stack.refs[logical_id] = arn
        stack.attrs[logical_id] = {"Id": arn}
    return stack


def _create_tables(stack: Stack, dynamodb: Any) -> None:
    for logical_id, resource in stack.of_type("AWS::DynamoDB::Table").items():
        props = stack.resolve(resource["Properties"])
        name = f"{stack.prefix}-{logical_id}"
        kwargs: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        dynamodb.create_table(**kwargs)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        arn = dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
        stack.refs[logical_id] = name
        stack.attrs[logical_id] = {"Arn": arn}


def _create_queues(stack: Stack, sqs: Any) -> None:
    pending = dict(stack.of_type("AWS::SQS::Queue"))
    while pending:  # dead-letter queues first: a redrive policy names one by ARN
        for logical_id, resource in list(pending.items()):
            try:
                props = stack.resolve(resource.get("Properties", {}))
            except KeyError:
                continue
            name = f"{stack.prefix}-{logical_id}" + (".fifo" if props.get("FifoQueue") else "")
            attributes = {k: _attribute(v) for k, v in props.items() if k in _QUEUE_ATTRIBUTES}
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            arn = queue_arn(sqs, url)
            stack.refs[logical_id] = url
            stack.attrs[logical_id] = {"Arn": arn, "QueueName": name, "QueueUrl": url}
            del pending[logical_id]
            break
        else:
            raise ValueError(f"template.yaml: queues {sorted(pending)} reference something missing")


def queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "RedrivePolicy",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
)


def _attribute(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _secret_value(props: dict[str, Any]) -> str:
    generate = props.get("GenerateSecretString")
    if not generate:
        return str(props.get("SecretString", ""))
    token = secrets.token_hex(20)[: int(generate.get("PasswordLength", 32))]
    if "SecretStringTemplate" in generate:
        data = json.loads(generate["SecretStringTemplate"])
        data[generate["GenerateStringKey"]] = token
        return json.dumps(data)
    return token
