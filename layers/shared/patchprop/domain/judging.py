"""The one way a rebuild is judged from its reports, by the service and by `patchprop gate`.

The rebuilt image's report is required: without it nothing is judged. The previous build's
and the base's are not: one that cannot be read is left out and the verdict says so, which
only makes the gate stricter (every finding new; none from the base).
"""

from __future__ import annotations

from collections.abc import Callable

from patchprop.domain.findings import ScanReport, ScanReportError
from patchprop.domain.gate import GateResult, Policy, gate
from patchprop.domain.scan import parse_report


def optional_report(read: Callable[[], bytes | None], whose: str, notes: list[str]) -> ScanReport | None:
    """A report the gate can do without: None, with a note in `notes`, when it cannot be read."""
    try:
        data = read()
        return parse_report(data) if data is not None else None
    except ScanReportError as exc:
        notes.append(f"Without {whose} scan report: {exc.reason}.")
        return None


def judge_reports(
    report: ScanReport, previous: ScanReport | None, base: ScanReport | None, policy: Policy, notes: list[str]
) -> GateResult:
    """The gate's verdict, with what was left out said after its own reasons."""
    decided = gate(report, previous, base, policy)
    if notes:
        decided = decided.model_copy(update={"reasons": decided.reasons + notes})
    return decided
