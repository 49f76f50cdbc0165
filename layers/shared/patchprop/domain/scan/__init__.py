"""Scan reports read into one model: Trivy JSON, Grype JSON and SARIF 2.1.0, by format."""

from __future__ import annotations

import json

from patchprop.domain.findings import MAX_REPORT_BYTES, ScanReport, ScanReportError
from patchprop.domain.scan.grype import read_grype
from patchprop.domain.scan.sarif import read_sarif
from patchprop.domain.scan.trivy import read_trivy


def parse_report(data: bytes | str | None, max_bytes: int = MAX_REPORT_BYTES) -> ScanReport:
    """Detect the format of a scan report and read it; ScanReportError says why not."""
    if data is None:
        raise ScanReportError("no scan report")
    raw = data.encode() if isinstance(data, str) else data
    # Refuse before parsing: json.loads needs several times the text's size in memory.
    if len(raw) > max_bytes:
        raise ScanReportError(
            f"scan report is {len(raw):,} bytes, more than the {max_bytes:,} bytes patchprop reads; "
            "scan with fewer severities or raise the limit"
        )
    if not raw.strip():
        raise ScanReportError("scan report is empty")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ScanReportError(f"scan report is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ScanReportError(
            f"scan report is a JSON {type(document).__name__}, not an object: "
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
