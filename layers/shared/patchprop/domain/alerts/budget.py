"""One SNS message per alert, whatever the rendering, within SNS's 256 KB."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from patchprop.domain.alerts.block_kit import _HEADER_CHARS, _SECTION_CHARS, _cut, block_kit
from patchprop.domain.alerts.chatbot import chatbot
from patchprop.domain.alerts.email import email
from patchprop.domain.alerts.model import LIST_LIMIT, MAX_MESSAGE_BYTES, Alert, Message, Template, attributes
from patchprop.domain.alerts.text import _summary, _title


def attribute_bytes(attrs: Mapping[str, str | int | float]) -> int:
    """What SNS counts of the attributes toward its message size: name, data type and value."""
    total = 0
    for name, value in attrs.items():
        kind = "Number" if isinstance(value, int | float) and not isinstance(value, bool) else "String"
        total += len(name.encode()) + len(kind) + len(str(value).encode())
    return total


def fit(text: str, limit: int, note: str = "\n[shortened to fit the 256 KB message limit]\n") -> str:
    """`text` cut to at most `limit` UTF-8 bytes, ending with `note` when it was cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    kept = data[: max(limit - len(note.encode()), 0)].decode(errors="ignore")
    return (kept + note).encode()[:limit].decode(errors="ignore")


def message(alert: Alert, template: Template = "email", list_limit: int = LIST_LIMIT) -> Message:
    """The SNS message for `alert`: email text, or chatbot / Slack JSON, always within 256 KB."""
    attrs = attributes(alert)
    subject, body = email(alert, list_limit)
    budget = MAX_MESSAGE_BYTES - attribute_bytes(attrs) - len(subject.encode())
    if template == "chatbot":
        body = _fit_json(chatbot, alert, budget, list_limit)
    elif template == "slack":
        body = _fit_json(block_kit, alert, budget, list_limit)
    link = alert.report_url or alert.log_url
    note = f"\n[shortened to fit the 256 KB message limit{f'; full report: {link}' if link else ''}]\n"
    return Message(subject=subject, body=fit(body, budget, note[:1000]), attributes=attrs)


def _fit_json(render: Callable[..., dict[str, Any]], alert: Alert, budget: int, list_limit: int) -> str:
    """Fewer list items until the JSON fits; failing that, a bare title and summary."""
    for limit in dict.fromkeys((list_limit, min(list_limit, 5), 0)):
        text = json.dumps(render(alert, list_limit=limit), ensure_ascii=False)
        if len(text.encode()) <= budget:
            return text
    title, summary = _cut(_title(alert), _HEADER_CHARS), _cut(_summary(alert), _SECTION_CHARS)
    if render is block_kit:
        return json.dumps({"text": f"{title}\n{summary}"}, ensure_ascii=False)
    content = {"textType": "client-markdown", "title": title, "description": summary}
    return json.dumps({"version": "1.0", "source": "custom", "content": content}, ensure_ascii=False)
