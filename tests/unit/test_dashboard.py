"""The CloudWatch dashboard shows what the functions emit: every patchprop metric on it is one a
function adds, and every dead-letter queue of the template is on it."""

from __future__ import annotations

import json
import re

from patchprop.domain.records import Outcome
from patchprop_local.resources import CHECKOUT as ROOT
from patchprop_local.template import load_template

TEMPLATE = load_template(ROOT / "template.yaml")


def dashboard() -> dict:
    body = TEMPLATE["Resources"]["PatchpropDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return json.loads(re.sub(r"\$\{([^}]+)\}", r"\1", body))


def metrics_on(board: dict) -> list[list]:
    return [m for w in board["widgets"] for m in w["properties"]["metrics"]]


def emitted() -> set[str]:
    """The metric names the functions and the layer add (the f-string families spelled out)."""
    source = "\n".join(
        p.read_text() for p in [*ROOT.glob("functions/*/app.py"), ROOT / "layers/shared/patchprop/retry.py"]
    )
    names = set(re.findall(r'add_metric\(\s*"([A-Za-z]+)"', source))
    names |= {f"Outcome{o.value.capitalize()}" for o in Outcome}
    if '"RebuildThrottled"' in source:
        names.add("RebuildThrottled")
    if 'f"RebuildDeferred{type(exc).__name__}"' in source:
        names |= {"RebuildDeferredCapReached", "RebuildDeferredCoolingDown"}
    return names


def test_every_patchprop_metric_on_the_dashboard_is_emitted() -> None:
    shown = {m[1] for m in metrics_on(dashboard()) if m[0] == "patchprop"}
    assert {"TimeToPromote", "RebuildThrottled", "OutcomePromoted", "OutcomeBlocked"} <= shown
    assert shown <= emitted()


def test_every_dead_letter_queue_is_on_the_dashboard() -> None:
    queues = {m[3] for m in metrics_on(dashboard()) if m[0] == "AWS/SQS"}
    dlqs = {f"{name}DLQ.QueueName" for name in TEMPLATE["Resources"]["Fn::ForEach::DeadLetterQueues"][1]}
    assert dlqs == queues
