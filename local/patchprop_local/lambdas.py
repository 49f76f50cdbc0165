"""Run the Lambda handlers outside Lambda: load them, and hand them the events AWS would.

Used by the demo, the tests and `patchprop local`, so all three exercise the same handlers
with the same event shapes as API Gateway, SQS event-source mappings and EventBridge.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Handler = Callable[[dict, Any], Any]


def load_handler(function_dir: Path, name: str = "handler") -> Handler:
    """Import `<function_dir>/app.py` under a unique module name and return its handler."""
    module_name = f"patchprop_fn_{function_dir.name}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, function_dir / "app.py")
        if spec is None or spec.loader is None:
            raise ImportError(f"no handler module at {function_dir / 'app.py'}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return getattr(module, name)


@dataclass
class LocalContext:
    """The parts of the Lambda context object that Powertools reads."""

    function_name: str = "patchprop-local"
    memory_limit_in_mb: int = 512
    timeout_s: int = 60
    aws_request_id: str = ""
    function_version: str = "$LATEST"

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def api_event(
    method: str,
    path: str,
    resource: str,
    path_parameters: dict[str, str],
    body: str | bytes | None,
    headers: dict[str, str] | None = None,
    stage: str = "v1",
    query: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST proxy event, as API Gateway would send it."""
    is_binary = isinstance(body, bytes)
    text = base64.b64encode(body).decode() if isinstance(body, bytes) else body
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers or {"Content-Type": "application/json"},
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
        # API Gateway: the last value of each name, and all of them.
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": dict(query) if query else None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": text,
        "isBase64Encoded": is_binary,
    }


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """Received SQS messages as the Records a Lambda event-source mapping delivers."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": m.get("Attributes", {}).get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": m.get("Attributes", {}).get("SentTimestamp", "0"),
                    "SenderId": "local",
                    "ApproximateFirstReceiveTimestamp": "0",
                },
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": queue_arn.split(":")[3],
            }
            for m in messages
        ]
    }


def eventbridge_event(
    source: str, detail_type: str, detail: dict[str, Any], resources: list[str] | None = None
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": resources or [],
        "detail": detail,
    }


@dataclass
class Delivery:
    received: int = 0
    failed: int = 0


def deliver_sqs(
    sqs: Any,
    queue_url: str,
    queue_arn: str,
    handler: Handler,
    batch_size: int = 10,
    function_name: str = "patchprop-local",
) -> Delivery:
    """One poll of an SQS event-source mapping: receive a batch, invoke, delete what succeeded."""
    messages = receive_batch(sqs, queue_url, batch_size)
    return invoke_batch(sqs, queue_url, queue_arn, handler, messages, function_name)


def receive_batch(sqs: Any, queue_url: str, batch_size: int = 10) -> list[dict[str, Any]]:
    """What an event-source mapping's poll receives (their visibility timeout starts now)."""
    answer = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=batch_size,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        WaitTimeSeconds=0,
    )
    return list(answer.get("Messages", []))


def invoke_batch(
    sqs: Any,
    queue_url: str,
    queue_arn: str,
    handler: Handler,
    messages: list[dict[str, Any]],
    function_name: str = "patchprop-local",
) -> Delivery:
    """Invoke the handler with received messages, and delete what succeeded.

    Failed records stay on the queue (their visibility runs out, or the handler changed it),
    so SQS redelivers them and, past maxReceiveCount, redrives them to the DLQ.
    """
    if not messages:
        return Delivery()
    try:
        result = handler(sqs_event(messages, queue_arn), LocalContext(function_name=function_name)) or {}
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
    except Exception:  # the invocation failed: Lambda deletes nothing, the batch comes back
        logging.getLogger(__name__).exception("invocation of %s failed", function_name)
        failed = {m["MessageId"] for m in messages}
    done = [m for m in messages if m["MessageId"] not in failed]
    for start in range(0, len(done), 10):
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(done[start : start + 10])
            ],
        )
    return Delivery(received=len(messages), failed=len(failed))


def response_json(response: dict[str, Any]) -> Any:
    return json.loads(response.get("body") or "null")
