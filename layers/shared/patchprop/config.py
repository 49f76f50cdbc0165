"""Environment variables: one pydantic model per handler, validated once and cached."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from patchprop.domain.alerts import NotifyFormat

M = TypeVar("M", bound=BaseModel)


class EnvVars(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


@lru_cache
def env_vars(model: type[M]) -> M:
    """The handler's environment, validated against its model (cached per container)."""
    return model.model_validate(dict(os.environ))


def _names(text: str) -> frozenset[str]:
    return frozenset(p.strip() for p in text.split(",") if p.strip())


class Resources(EnvVars):
    """What a handler may be wired to; each handler's model requires the ones it uses."""

    TABLE_NAME: str = ""
    IDEMPOTENCY_TABLE_NAME: str = ""
    PATCH_QUEUE_URL: str = ""
    REBUILD_QUEUE_URL: str = ""
    SLACK_QUEUE_URL: str = ""
    TOPIC_ARN: str = ""
    REPORTS_BUCKET: str = ""  # reports are read from this bucket only
    WEBHOOK_SECRET_ID: str = ""
    REGISTRY_CREDENTIALS_SECRET_ID: str = ""
    SLACK_WEBHOOK_SECRET_ID: str = ""
    # Which builder starts rebuilds: CodeBuild, or one registered by name (`patchprop local`).
    PATCHPROP_BUILDS: str = "codebuild"
    # Outcome events ("Image Promoted", ...) go to this EventBridge bus; empty: none are put.
    EVENT_BUS_NAME: str = ""
    # What the base check reads (adapters/base_sources.py): the base reports' folder, a KEV list,
    # and a syft binary to make a base's SBOM when none is attached (`patchprop local`).
    BASE_REPORTS_URI: str = ""
    KEV_SOURCE: str = ""
    BASE_SYFT: str = ""
    # The KMS key (ARN) promoted digests are signed with in cosign's format (adapters/kms_signer.py),
    # after their tag moved; empty: not signed here (unless `patchprop local` registers a signer).
    SIGNING_KEY_ARN: str = ""
    # ScanSource=trivy: where the scan-only builds of own-package rescans leave their reports.
    RESCAN_REPORTS_URI: str = ""


class WebhookEnv(Resources):
    TABLE_NAME: str
    PATCH_QUEUE_URL: str
    WEBHOOK_SECRET_ID: str


class EcrEventsEnv(Resources):
    TABLE_NAME: str
    PATCH_QUEUE_URL: str
    # Where ECR's repositories are served from, when not <account>.dkr.ecr.<region>.amazonaws.com
    # (`patchprop local`: its own registry).
    ECR_REGISTRY_HOST: str = ""


class PollerEnv(Resources):
    TABLE_NAME: str
    PATCH_QUEUE_URL: str
    REBUILD_PROJECTS: str = ""  # the cap's reconciler counts the builds running in these
    # Rescans of promoted images a day (logic/rescan.py); 0: none. Their rebuilds go to this queue.
    OWN_PACKAGE_RESCANS_PER_DAY: int = 0
    SCAN_SOURCE: Literal["trivy", "ecr"] = "trivy"
    # A base's check-only scan still running after this long lost its end: its patch goes on,
    # "not scanned" (logic/base_scan.py sweep_base_scans).
    BASE_SCAN_TIMEOUT_MINUTES: float = 180.0

    @property
    def projects(self) -> frozenset[str]:
        return _names(self.REBUILD_PROJECTS)


class PlannerEnv(Resources):
    TABLE_NAME: str
    REBUILD_QUEUE_URL: str
    IDEMPOTENCY_TABLE_NAME: str
    BASE_CHECKS: str = ""  # per-base settings of the base check (domain/urgency.py)
    NOTIFY_FORMAT: NotifyFormat = "email"
    # A base digest with no report gets one check-only scan on one of these (logic/base_scan.py).
    REBUILD_PROJECTS: str = ""

    @property
    def projects(self) -> frozenset[str]:
        return _names(self.REBUILD_PROJECTS)

    @property
    def scans_bases_by_build(self) -> bool:
        """On CodeBuild, reports in S3 and no syft in-process (that is `patchprop local`)."""
        return (
            self.PATCHPROP_BUILDS == "codebuild"
            and not self.BASE_SYFT
            and self.BASE_REPORTS_URI.startswith("s3://")
            and bool(self.projects)
        )


class RebuilderEnv(Resources):
    TABLE_NAME: str
    IDEMPOTENCY_TABLE_NAME: str
    REBUILD_QUEUE_URL: str
    REBUILD_PROJECTS: str
    TOPIC_ARN: str
    BUILD_CONCURRENCY_CAP: int = 20
    # Seconds a rebuild waiting for a slot of the cap stays on the queue before it looks again.
    CAP_WAIT_SECONDS: int = 30
    NOTIFY_FORMAT: NotifyFormat = "email"

    @property
    def projects(self) -> frozenset[str]:
        return _names(self.REBUILD_PROJECTS)


class BuildEventsEnv(Resources):
    TABLE_NAME: str
    TOPIC_ARN: str
    REBUILD_QUEUE_URL: str
    PATCH_QUEUE_URL: str  # a base's check-only scan ended: its patch goes back to the planner
    # No scan report: true fails the rebuild, false tells it as "succeeded" (not scanned).
    REQUIRE_SCAN: bool = True
    NOTIFY_FORMAT: NotifyFormat = "email"
    # Where the gate reads the candidate's findings: the build's Trivy report, or ECR's scan.
    SCAN_SOURCE: Literal["trivy", "ecr"] = "trivy"
    SCAN_WAIT_SECONDS: float = 150.0  # after the build ended, an unfinished ECR scan is decided


class ApiEnv(Resources):
    TABLE_NAME: str
    REBUILD_PROJECTS: str
    PATCH_QUEUE_URL: str = ""  # `patchprop patch BASE --now`
    # Promote and rollback by hand tell the topic and release the cascade below.
    TOPIC_ARN: str = ""
    REBUILD_QUEUE_URL: str = ""
    # `patchprop rescan [IMAGE]` (logic/rescan.py): the tick's budget, and where findings are read.
    OWN_PACKAGE_RESCANS_PER_DAY: int = 0
    SCAN_SOURCE: Literal["trivy", "ecr"] = "trivy"

    @property
    def projects(self) -> frozenset[str]:
        return _names(self.REBUILD_PROJECTS)


class SlackEnv(Resources):
    TABLE_NAME: str
    SLACK_WEBHOOK_SECRET_ID: str
    SLACK_QUEUE_URL: str
