"""The "base moved" message: one per patch, before its rebuilds, with the base check's verdict,
the diff against the previous digest and the urgency decided.

"python:3.13 moved: fixes CVE-… (HIGH) in openssl; 212 images will rebuild now", or
"… no fixes; batched until 04:00 UTC". A base that does not verify is told to the owner of
every image built on it (one message per owner, for the `owner` filter policy).
"""

from __future__ import annotations

import json

from patchprop.domain.alerts.budget import fit
from patchprop.domain.alerts.model import MAX_MESSAGE_BYTES, SUBJECT_LIMIT, Message, Template
from patchprop.domain.base_check import BaseJudgement
from patchprop.domain.provenance import provenance_changes


def headline(check: BaseJudgement, images: int) -> str:
    """The one line: what moved, why it matters, and what happens now."""
    name = check.base.removeprefix("docker.io/library/").removeprefix("docker.io/")
    fixes = check.diff.fixed
    if check.urgency == "refused":
        return f"{name} moved, refused, nothing rebuilds on it: {check.urgency_reason}"
    what = (
        "fixes " + ", ".join(f"{f.id} ({f.severity.value}) in {f.package}" for f in fixes[:3])
        if fixes
        else "no fixes"
    )
    if fixes and len(fixes) > 3:
        what += f" and {len(fixes) - 3} more"
    if check.urgency == "skip":
        return f"{name} moved: {what}; {check.urgency_reason}, so nothing rebuilds"
    if check.urgency in ("batch", "soak") and check.release_at:
        until = check.release_at.strftime("%Y-%m-%d %H:%M UTC")
        return f"{name} moved: {what}; {_plural(images)} batched until {until} ({check.urgency_reason})"
    return f"{name} moved: {what}; {_plural(images)} will rebuild now ({check.urgency_reason})"


def base_moved_message(
    check: BaseJudgement,
    images: int,
    *,
    owner: str | None = None,
    owners: tuple[str, ...] = (),
    template: Template = "email",
) -> Message:
    """The SNS message, attributes `outcome` (base-moved / base-refused), `base`, `urgency`."""
    line = headline(check, images)
    lines = [line, "", f"Base:      {check.base}", f"New:       {check.digest}"]
    lines.append(f"Previous:  {check.previous_digest or '(none)'}")
    lines.append(
        f"Signature: {check.signature}" + (f" ({check.signature_reason})" if check.signature_reason else "")
    )
    lines.append(f"Scanned:   {'yes, ' + (check.report_uri or '') if check.scanned else 'no'}")
    if check.provenance is not None:
        lines.append(f"Provenance: {check.provenance.said()}")
    changes = provenance_changes(check.provenance, check.previous_provenance)
    lines += ["", *check.diff.said(), *changes, *check.notes]
    body = "\n".join(lines)
    if template != "email":
        body = json.dumps(
            {
                "version": "1.0",
                "source": "custom",
                "content": {"title": line[:250], "description": body[:3500]},
            }
        )
    outcome = "base-refused" if check.urgency == "refused" else "base-moved"
    severity = check.diff.highest_fixed()
    attrs: dict[str, str | int | float | tuple[str, ...]] = {
        "outcome": outcome,
        "base": check.base,
        "urgency": check.urgency,
        "severity": severity.value if severity else "NONE",
        "severity_rank": severity.rank if severity else 0,
    }
    if owner:
        attrs["owner"] = owner
    elif owners:  # one message for the patch, matched by each owner's filter policy
        attrs["owner"] = owners
    subject = "".join(c if c.isascii() and c.isprintable() else "?" for c in line)[:SUBJECT_LIMIT]
    return Message(subject=subject, body=fit(body, MAX_MESSAGE_BYTES - 4096), attributes=attrs)


def _plural(count: int) -> str:
    return "1 image" if count == 1 else f"{count} images"
