"""SNS adapter: publish an outcome with message attributes that filter policies can match."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from patchprop.domain.alerts import Message
from patchprop.domain.errors import PatchpropError

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef


class NotifyError(PatchpropError):
    """SNS did not take the message."""


def _attribute(value: str | int | float | tuple[str, ...]) -> MessageAttributeValueTypeDef:
    if isinstance(value, tuple):
        return {"DataType": "String.Array", "StringValue": json.dumps(list(value))}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"DataType": "Number", "StringValue": str(value)}
    return {"DataType": "String", "StringValue": str(value)}


class Topic:
    """One SNS topic."""

    def __init__(self, arn: str, client: SNSClient | None = None) -> None:
        self.arn = arn
        self.client = client or boto3.client("sns")

    def publish(self, message: Message) -> str:
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            name: _attribute(value)
            for name, value in message.attributes.items()
            if value not in (None, "", ())
        }
        try:
            answer = self.client.publish(
                TopicArn=self.arn, Subject=message.subject, Message=message.body, MessageAttributes=attributes
            )
        except ClientError as exc:
            raise NotifyError(f"publishing to {self.arn}: {exc}") from exc
        return answer["MessageId"]
