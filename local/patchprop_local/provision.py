"""Stand template.yaml's tables, queues, topics and secrets up against an AWS endpoint (moto)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import boto3

from patchprop_local.template import REGION, Stack, load_template, without_language_extensions


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
    stack = Stack(without_language_extensions(template, params), params, endpoint_url, prefix)

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


def subscribe_queue(
    sqs: Any, sns: Any, topic_arn: str, name: str, filter_policy: dict[str, Any] | None = None
) -> tuple[str, str]:
    """A new SQS queue subscribed to `topic_arn` (filtered on message attributes if asked)."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = queue_arn(sqs, url)
    attributes = {"FilterPolicy": json.dumps(filter_policy), "FilterPolicyScope": "MessageAttributes"}
    sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes=attributes if filter_policy else {}
    )
    return url, arn


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
