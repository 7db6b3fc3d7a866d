"""Notifications: an email over SMTP (Mailpit in development), run on the core queue."""

from __future__ import annotations

import email.message
import email.utils
from collections.abc import Callable
from typing import Any

import aiosmtplib
from temporalio import activity

from conceptor.contracts import SEND_NOTIFICATION, SendNotificationInput, SendNotificationResult
from conceptor.platform.settings import Settings


class NotifyActivities:
    """Activities that reach people; receives settings, connects on each call."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn(name=SEND_NOTIFICATION)
    async def send_notification(self, data: SendNotificationInput) -> SendNotificationResult:
        s = self._settings
        message = email.message.EmailMessage()
        message["From"] = s.mail_from
        message["To"] = s.mail_notify_to
        message["Subject"] = data.subject
        message["Date"] = email.utils.formatdate(usegmt=True)
        domain = s.mail_from.rpartition("@")[2] or "localhost"
        message_id = f"<{data.message_key}@{domain}>"
        message["Message-ID"] = message_id
        message.set_content(data.body)
        await aiosmtplib.send(message, hostname=s.smtp_host, port=s.smtp_port, timeout=10)
        activity.logger.info("notification sent", extra={"to": s.mail_notify_to})
        return SendNotificationResult(message_id=message_id, to=s.mail_notify_to)


def notify_activities(settings: Settings) -> list[Callable[..., Any]]:
    return [NotifyActivities(settings).send_notification]
