"""SQS adapter: send pydantic messages, in batches, and push a message's retry further out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError
from pydantic import BaseModel

from patchprop.domain.errors import PatchpropError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SQS_BATCH = 10
_ATTEMPTS = 3


class QueueError(PatchpropError):
    """Messages could not be sent."""


class Queue:
    """One SQS queue."""

    def __init__(self, url: str, client: SQSClient | None = None) -> None:
        self.url = url
        self.client = client or boto3.client("sqs")

    def send(self, message: BaseModel, delay: int = 0) -> None:
        """One message; `delay` seconds before it can be received (SQS allows 0..900)."""
        if not delay:
            self.send_batch([message])
            return
        try:
            self.client.send_message(
                QueueUrl=self.url,
                MessageBody=message.model_dump_json(),
                DelaySeconds=max(0, min(int(delay), 900)),
            )
        except ClientError as exc:
            raise QueueError(f"sending to {self.url}: {exc}") from exc

    def send_batch(self, messages: Sequence[BaseModel]) -> None:
        """Send every message (10 per call), retrying entries SQS did not take."""
        for start in range(0, len(messages), SQS_BATCH):
            chunk = {str(i): m.model_dump_json() for i, m in enumerate(messages[start : start + SQS_BATCH])}
            for _ in range(_ATTEMPTS):
                try:
                    answer = self.client.send_message_batch(
                        QueueUrl=self.url,
                        Entries=[{"Id": i, "MessageBody": body} for i, body in chunk.items()],
                    )
                except ClientError as exc:
                    raise QueueError(f"sending to {self.url}: {exc}") from exc
                chunk = {f["Id"]: chunk[f["Id"]] for f in answer.get("Failed", [])}
                if not chunk:
                    break
            if chunk:
                raise QueueError(f"{len(chunk)} message(s) not accepted by {self.url}")

    def retry_later(self, receipt_handle: str, seconds: int) -> None:
        """Make a received message visible again in `seconds` (SQS allows 0..43200)."""
        try:
            self.client.change_message_visibility(
                QueueUrl=self.url,
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=max(0, min(int(seconds), 43200)),
            )
        except ClientError as exc:
            raise QueueError(f"delaying a message on {self.url}: {exc}") from exc
