"""Scan reports read into one model: Trivy JSON, Grype JSON and SARIF 2.1.0, by format."""

from __future__ import annotations

import json

from patchprop.domain.findings import MAX_REPORT_BYTES, ScanReport, ScanReportError, too_large
from patchprop.domain.scan.common import json_type
from patchprop.domain.scan.grype import read_grype
from patchprop.domain.scan.sarif import read_sarif
from patchprop.domain.scan.trivy import read_trivy


def parse_report(
    data: bytes | str | None, max_bytes: int = MAX_REPORT_BYTES, *, size: int | None = None
) -> ScanReport:
    """Detect the format of a scan report and read it; ScanReportError says why not.

    `size` is the whole report's size when `data` was read only up to just past the limit.
    """
    if data is None:
        raise ScanReportError("no scan report")
    raw = data.encode() if isinstance(data, str) else data
    # Refuse before parsing: json.loads needs several times the text's size in memory.
    if len(raw) > max_bytes:
        raise ScanReportError(too_large(max(size or 0, len(raw)), max_bytes))
    if not raw.strip():
        raise ScanReportError("scan report is empty")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ScanReportError(f"scan report is not valid JSON: {exc}") from exc
    if isinstance(document, list):
        return _read_array(document)
    if not isinstance(document, dict):
        raise ScanReportError(
            f"scan report is {'JSON null' if document is None else 'a JSON ' + json_type(document)}, "
            "not an object: "
            "not Trivy JSON, Grype JSON or SARIF"
        )
    try:
        if "runs" in document:
            return read_sarif(document)
        if "matches" in document:
            return read_grype(document)
        if "Results" in document or "SchemaVersion" in document:
            return read_trivy(document)
    except (AttributeError, TypeError, ValueError) as exc:
        if isinstance(exc, ScanReportError):
            raise
        # A shape no check above foresaw: still a malformed report, never a crash.
        raise ScanReportError(f"malformed scan report: {exc}") from exc
    keys = ", ".join(str(key)[:40] for key in list(document)[:10]) or "none"
    raise ScanReportError(
        "unknown scan report format: expected Trivy JSON (Results), Grype JSON (matches) "
        f"or SARIF 2.1.0 (runs); top-level keys: {keys}"
    )


def _read_array(document: list[object]) -> ScanReport:
    """A top-level array: the earliest Grype JSON is read; Trivy's SchemaVersion 1 is refused."""
    first = document[0] if document else None
    if isinstance(first, dict) and "vulnerability" in first and "artifact" in first:
        try:
            return read_grype(document)
        except (AttributeError, TypeError, ValueError) as exc:
            if isinstance(exc, ScanReportError):
                raise
            raise ScanReportError(f"malformed scan report: {exc}") from exc
    if isinstance(first, dict) and "Target" in first:
        raise ScanReportError(
            "scan report is Trivy JSON SchemaVersion 1 (a top-level array, Trivy before 0.20), which "
            "patchprop does not read; scan with Trivy 0.20 or later"
        )
    raise ScanReportError(
        "scan report is a JSON array, not an object: not Trivy JSON, Grype JSON or SARIF"
        + (
            " (an empty array is what the earliest Grype and Trivy wrote for a clean scan; "
            "scan with a current version)"
            if not document
            else ""
        )
    )
