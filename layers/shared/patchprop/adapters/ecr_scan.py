"""ECR scan findings: ecr:DescribeImageScanFindings for one image digest, every page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from patchprop.adapters.ecr_auth import PRIVATE_HOST
from patchprop.domain.errors import RegistryError, RegistryUnavailable
from patchprop.domain.refs import ImageRef
from patchprop.domain.scan.ecr import EcrScan


def _client(region: str) -> Any:
    return boto3.client("ecr", region_name=region)


class EcrScans:
    """Reads an image's scan status and findings from ECR (basic or enhanced scanning)."""

    def __init__(self, clients: Callable[[str], Any] = _client) -> None:
        self._clients = clients
        self._built: dict[str, Any] = {}

    def scan(self, image: ImageRef, digest: str) -> EcrScan:
        found = PRIVATE_HOST.match(image.registry)
        if found is None:
            raise RegistryError(f"{image.registry} is not an ECR registry: no ECR scan findings for {image}")
        region = found.group("region")
        client = self._built.get(region) or self._built.setdefault(region, self._clients(region))
        arguments = {
            "registryId": found.group("account"),
            "repositoryName": image.repository,
            "imageId": {"imageDigest": digest},
        }
        pages: list[dict[str, Any]] = []
        try:
            for page in client.get_paginator("describe_image_scan_findings").paginate(**arguments):
                pages.append(dict(page))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ScanNotFoundException":
                return EcrScan("PENDING", "no scan of this image yet")
            if code in ("ImageNotFoundException", "RepositoryNotFoundException"):
                return EcrScan("FINDINGS_UNAVAILABLE", f"{code} for {image.name}@{digest}")
            raise RegistryUnavailable(
                f"ECR DescribeImageScanFindings on {image.name} failed: {code}"
            ) from exc
        except BotoCoreError as exc:
            raise RegistryUnavailable(f"ECR unreachable: {type(exc).__name__}") from exc
        status = dict(pages[0].get("imageScanStatus") or {}) if pages else {}
        return EcrScan(str(status.get("status", "")), str(status.get("description", "")), pages)
