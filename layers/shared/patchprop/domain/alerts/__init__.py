"""What patchprop tells people about a finished rebuild.

One `Alert` per finished rebuild, rendered three ways from the same data: a plain-text email,
an Amazon Q Developer (AWS Chatbot) custom notification for Slack and Teams, and Slack Block
Kit for an incoming webhook. Long lists become "and N more" plus a link, and `message()` keeps
the whole SNS message, subject and attributes included, within SNS's 256 KB. One
`PatchSummary` per patch event, once its last rebuild finished, rendered the same three ways.
"""

from __future__ import annotations

from patchprop.domain.alerts.block_kit import block_kit
from patchprop.domain.alerts.budget import attribute_bytes, fit, message
from patchprop.domain.alerts.chatbot import chatbot
from patchprop.domain.alerts.email import email
from patchprop.domain.alerts.model import (
    LIST_LIMIT,
    MAX_MESSAGE_BYTES,
    Alert,
    Message,
    NotifyFormat,
    Template,
    attributes,
    report_link,
)
from patchprop.domain.alerts.summary import (
    PatchSummary,
    summary_block_kit,
    summary_chatbot,
    summary_email,
    summary_message,
)

__all__ = [
    "LIST_LIMIT",
    "MAX_MESSAGE_BYTES",
    "Alert",
    "Message",
    "NotifyFormat",
    "PatchSummary",
    "Template",
    "attribute_bytes",
    "attributes",
    "block_kit",
    "chatbot",
    "email",
    "fit",
    "message",
    "report_link",
    "summary_block_kit",
    "summary_chatbot",
    "summary_email",
    "summary_message",
]
