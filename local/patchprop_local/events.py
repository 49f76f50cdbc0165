"""The event pump: the template's SQS event-source mappings, EventBridge rules and schedules,
delivered to the same handlers Lambda runs.

Rules are created in moto's EventBridge (so moto matches them) with a delivery queue as their
target; outcome messages of the SNS topic are read from a subscribed queue and told to listeners.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import Any

from patchprop_local.aws import LocalAws, environment
from patchprop_local.fairlock import HandlerLock
from patchprop_local.lambdas import eventbridge_event, invoke_batch, receive_batch
from patchprop_local.provision import queue_arn, subscribe_queue

Tell = Callable[[str, dict[str, Any]], None]
ASYNC_ATTEMPTS = 3  # Lambda tries an asynchronous invocation 3 times, then its OnFailure DLQ


class ScheduleError(RuntimeError):
    """A schedule expression the local stack cannot run."""


def rate_seconds(expression: str) -> float:
    """Seconds between runs of an EventBridge `rate(N unit)` expression."""
    found = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not found:
        raise ScheduleError(f"template.yaml: cannot run schedule {expression!r} locally (only rate(...))")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[found.group(2).rstrip("s")]
    return int(found.group(1)) * unit


class EventPump:
    """Delivers every event source of the template, one handler at a time (`invoke_lock`)."""

    def __init__(
        self,
        aws: LocalAws,
        invoke_lock: HandlerLock,
        tell: Tell,
        saved: Callable[[], None] | None = None,
        prepare: dict[str, Callable[[list[dict[str, Any]]], Any]] | None = None,
    ) -> None:
        self.aws = aws
        self.prepare = prepare or {}  # queue (logical id) -> work on a received batch, unlocked
        self.saved = saved or (lambda: None)  # after each round that delivered: the state to disk
        self.stack = aws.started
        self.sqs = aws.client("sqs")
        self._lock = invoke_lock
        self.tell = tell
        self._rule_queues = self._create_rules()  # function -> delivery queue url
        self._outcomes, _ = subscribe_queue(
            self.sqs, aws.client("sns"), self.stack.refs["OutcomeTopic"], "patchprop-local-outcomes"
        )

    def _create_rules(self) -> dict[str, str]:
        """Each EventBridgeRule of the template as a moto rule targeting a delivery queue."""
        events = self.aws.client("events")
        queues = {}
        for function, props in self.stack.events("EventBridgeRule"):
            url = self.sqs.create_queue(QueueName=f"patchprop-local-{function}-rule")["QueueUrl"]
            events.put_rule(Name=f"patchprop-local-{function}", EventPattern=json.dumps(props["Pattern"]))
            target = {"Id": "deliver", "Arn": queue_arn(self.sqs, url)}
            events.put_targets(Rule=f"patchprop-local-{function}", Targets=[target])
            queues[function] = url
        return queues

    def poll_interval(self) -> float | None:
        """Seconds between scheduled runs, from the template's first schedule (None: no schedule)."""
        schedules = self.stack.events("ScheduleV2")
        return rate_seconds(schedules[0][1]["ScheduleExpression"]) if schedules else None

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set; a failing round is told, and the stack stays up."""
        while not stop.is_set():
            try:
                busy = self.pump_once()
            except Exception as exc:
                self.tell("error", {"where": "event delivery", "error": repr(exc)})
                busy = False
            stop.wait(0.05 if busy else 0.25)

    def run_schedules_every(self, interval: float, stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                self.run_schedules()
            except Exception as exc:
                self.tell("error", {"where": "schedule", "error": repr(exc)})

    def pump_once(self) -> bool:
        """One round of every event source; True if anything was delivered."""
        delivered = self._poll_sqs()
        for function, url in self._rule_queues.items():
            delivered += self._deliver_rule(function, url)
        for message in self._receive(self._outcomes):
            self.tell("sns", json.loads(message["Body"]))
            self.sqs.delete_message(QueueUrl=self._outcomes, ReceiptHandle=message["ReceiptHandle"])
            delivered += 1
        if delivered:
            self.saved()
        return delivered > 0

    def _poll_sqs(self) -> int:
        """One poll of every SQS event-source mapping in the template; messages received.

        A queue's `prepare` (slow work the handler would do first, like syft on a base) runs on
        the received batch before the handlers' lock is taken, so others are served meanwhile.
        """
        received = 0
        for function, props in self.stack.events("SQS"):
            queue = self.stack.queue_logical_id(props["Queue"])
            url = self.stack.refs[queue]
            messages = receive_batch(self.sqs, url, int(props.get("BatchSize", 10)))
            if not messages:
                continue
            if queue in self.prepare:
                try:
                    self.prepare[queue](messages)
                except Exception as exc:  # the handler does the work itself, and says what failed
                    self.tell("error", {"where": f"preparing {function}", "error": repr(exc)})
            with self._lock, environment(self.aws.function_env(function)):
                handler = self.aws.handler(function)
                received += invoke_batch(
                    self.sqs, url, props["Queue"], handler, messages, function_name=function
                ).received
        return received

    def _deliver_rule(self, function: str, url: str) -> int:
        messages = self._receive(url)
        for message in messages:
            event = json.loads(message["Body"])
            event.setdefault("account", "123456789012")  # moto's rule targets leave it out
            try:
                with self._lock:
                    answer = self.aws.invoke(function, event)
                self.tell("answer", {"function": function, "answer": answer})
            except Exception as exc:
                # Lambda retries asynchronous invocations, then sends them to the OnFailure DLQ.
                self.tell("error", {"where": function, "error": repr(exc)})
                if int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")) < ASYNC_ATTEMPTS:
                    continue
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def _receive(self, url: str) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
        return list(answer.get("Messages", []))

    def run_schedules(self) -> list[tuple[str, Any]]:
        """Fire every scheduled event once (EventBridge schedules do not fire in moto)."""
        answers = []
        with self._lock:
            for kind in ("ScheduleV2", "Schedule"):
                for function, _props in self.stack.events(kind):
                    event = eventbridge_event("aws.scheduler", "Scheduled Event", {})
                    answers.append((function, self.aws.invoke(function, event)))
        self.saved()
        self.tell("poll", {"answers": [a for _, a in answers]})
        return answers
