"""CodeBuild state changes: record, judge (scan reports, gate) and tell each rebuild's outcome once."""

from __future__ import annotations

from datetime import UTC, datetime

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchprop import wiring
from patchprop.config import BuildEventsEnv, env_vars
from patchprop.domain.events import BuildStateChange
from patchprop.domain.records import Rebuild
from patchprop.logic.base_scan import base_scan_ended, is_base_scan
from patchprop.logic.conclude import conclude, record_build_event
from patchprop.logic.ecr_verdict import EcrScanning
from patchprop.logic.rescan_build import is_rescan, rescan_ended

logger = Logger()
tracer = Tracer()
metrics = Metrics()


class BuildStateChangeEvent(EventBridgeModel):
    detail: BuildStateChange


def count(rebuild: Rebuild, signing: bool = False) -> None:
    """Its status and outcome, and for one patchprop promoted, the seconds from its patch's
    detection to its promotion (the dashboard's time to patch); with a signer, a promoted digest
    it did not sign (SigningFailed: the promotion stands, its reasons say why)."""
    metrics.add_metric(f"Rebuild{rebuild.status.value.capitalize()}", MetricUnit.Count, 1)
    if rebuild.outcome:
        metrics.add_metric(f"Outcome{rebuild.outcome.value.capitalize()}", MetricUnit.Count, 1)
    if rebuild.promoted_at and rebuild.promoted_by == "patchprop":
        seconds = (rebuild.promoted_at - rebuild.detected_at).total_seconds()
        metrics.add_metric("TimeToPromote", MetricUnit.Seconds, max(seconds, 0.0))
    if signing and rebuild.on_tag and rebuild.signed is False:
        metrics.add_metric("SigningFailed", MetricUnit.Count, 1)


def _ecr_scanning(
    event: BuildStateChangeEvent, env: BuildEventsEnv, adapters: wiring.Adapters
) -> EcrScanning | None:
    """ScanSource=ecr: the gate reads ECR's findings, waiting up to SCAN_WAIT_SECONDS after the build."""
    if env.SCAN_SOURCE != "ecr":
        return None
    waited = (datetime.now(UTC) - event.time).total_seconds()
    return EcrScanning(adapters.scans, waited, env.SCAN_WAIT_SECONDS)


def scan_only(detail: BuildStateChange, env: BuildEventsEnv, adapters: wiring.Adapters) -> dict | None:
    """A build that scans and builds nothing: a base's check-only scan (its patch goes back to the
    planner), or a promoted digest's rescan (its report judged). None: a rebuild."""
    if is_base_scan(detail):
        scan = base_scan_ended(detail, scans=adapters.base_scans, patches=adapters.patch_queue)
        logger.info("base scan", extra={"build_id": detail.build_id, "state": scan and scan.state})
        return {"status": "base_scan", "state": scan.state if scan else None}
    if is_rescan(detail):
        done = rescan_ended(detail, parts=adapters.rescan_parts(env.SCAN_SOURCE))
        answer = {
            "status": "rescan",
            "image": done.image if done else None,
            "outcome": done.outcome if done else None,
        }
        logger.info("rescan build", extra={"build_id": detail.build_id, **answer})
        if done and done.rebuild_id:
            metrics.add_metric("OwnPackageRebuilds", MetricUnit.Count, 1)
        return answer
    return None


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=BuildStateChangeEvent)
def handler(event: BuildStateChangeEvent, context: LambdaContext) -> dict:
    env = env_vars(BuildEventsEnv)
    adapters = wiring.adapters(env)
    scanned = scan_only(event.detail, env, adapters)
    if scanned is not None:
        return scanned
    rebuild = record_build_event(
        event.detail,
        store=adapters.store,
        builds=adapters.builds,
        reports=adapters.reports,
        require_scan=env.REQUIRE_SCAN,
        tag_mover=adapters.tag_mover,
        evidence=adapters.evidence,
        ecr=_ecr_scanning(event, env, adapters),
    )
    if rebuild is None:
        logger.info("not a patchprop build", extra={"build_id": event.detail.build_id})
        return {"status": "ignored"}
    released = conclude(
        rebuild,
        store=adapters.store,
        topic=adapters.topic,
        rebuild_queue=adapters.rebuild_queue,
        template=env.NOTIFY_FORMAT,
        bus=adapters.bus,
    )
    count(rebuild, signing=rebuild.signed is False and adapters.signer is not None)
    answer = {"status": rebuild.status.value, "rebuild_id": rebuild.rebuild_id}
    logger.info("build state", extra={**answer, "released": released})
    return answer
