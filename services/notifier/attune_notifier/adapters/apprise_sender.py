"""Delivery through Apprise's async API, channel validation, and the guard that keeps URLs out of logs.

Apprise logs channel URLs (masked, but custom headers such as `+X-Api-Key=` stay visible), request
payloads (Vonage's includes the API secret) and plugin errors quoting tokens; urllib3 logs request
paths, where some services put tokens. So below WARNING those records are dropped, and at WARNING
and above their text is replaced by where they came from. The guard sits on the emitting loggers,
so it holds whatever handlers the process (or a test) installs.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from apprise import Apprise, AppriseAsset, NotifyFormat
from attune_contracts.messages import ChannelKind

from ..ports import SendResult
from ..service import Rendered

GUARDED_LOGGERS = ("apprise", "urllib3", "urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry",
                   "urllib3.response", "requests", "requests_oauthlib", "charset_normalizer")

MAX_URL_LENGTH = 2048
_SCHEMA = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]{0,31})://")

EMAIL_SCHEMAS = {"mailto", "mailtos", "email", "ses", "sendgrid", "mailgun", "sparkpost", "resend", "smtp2go",
                 "brevo", "postmark", "o365", "azure"}
SMS_SCHEMAS = {"twilio", "vonage", "nexmo", "sns", "clicksend", "d7sms", "bulksms", "bulkvs", "plivo", "sinch",
               "msgbird", "messagebird", "msg91", "kavenegar", "seven", "smseagle", "textbelt", "burstsms",
               "dapnet", "freemobile", "httpsms", "signal", "smsmgr", "threema", "voipms", "africas", "atalk",
               "46elks", "elks", "sfr", "smsc"}


class RedactingGuard(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        record.msg = f"{record.name} {record.levelname.lower()} in {record.module}.{record.funcName} (details withheld)"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        return True


_GUARD = RedactingGuard()


def install_log_guard() -> None:
    for name in GUARDED_LOGGERS:
        logger = logging.getLogger(name)
        if _GUARD not in logger.filters:
            logger.addFilter(_GUARD)


class ChannelRejected(ValueError):
    """Why a channel URL was refused; the message never contains the URL or any part of it but its scheme."""


def kind_of(url: str) -> ChannelKind:
    match = _SCHEMA.match(url)
    schema = match.group(1).lower() if match else ""
    if schema in EMAIL_SCHEMAS:
        return ChannelKind.EMAIL
    if schema in SMS_SCHEMAS:
        return ChannelKind.SMS
    return ChannelKind.PUSH


def validate_channel_url(url: str) -> ChannelKind:
    """Check an Apprise URL without sending anything; return its likely kind or raise ChannelRejected."""
    install_log_guard()
    if not url or not url.strip():
        raise ChannelRejected("the channel URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise ChannelRejected(f"the channel URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() for ch in url.strip()) or url != url.strip():
        raise ChannelRejected("the channel URL contains spaces or line breaks")
    match = _SCHEMA.match(url)
    if not match:
        raise ChannelRejected("not an Apprise URL: it must start with a service scheme such as ntfy://, "
                              "mailto:// or twilio://")
    schema = match.group(1).lower()
    from apprise.manager_plugins import NotificationManager

    manager = NotificationManager()
    if schema not in manager:
        raise ChannelRejected(f"'{schema}://' is not a service Apprise knows (see the Apprise wiki for the list)")
    try:
        plugin = Apprise.instantiate(url, asset=AppriseAsset(secure_logging=True), suppress_exceptions=False)
    except Exception:  # noqa: BLE001 - plugin errors quote the offending token; say what, not which
        service = getattr(manager[schema], "service_name", schema)
        raise ChannelRejected(
            f"Apprise's {service} plugin refused this URL: a required token, key, phone number or address is "
            f"missing or malformed"
        ) from None
    if plugin is None:
        raise ChannelRejected(f"the '{schema}://' URL could not be parsed (check its host, port and parameters)")
    return kind_of(url)


@dataclass
class AppriseSender:
    """Sends one rendered message to one channel URL. A falsy or missing result is a failure.

    Parsing a URL into a plugin costs about as much CPU as sending (~3 ms), so plugins are kept per URL
    (bounded LRU) and each send gets a shallow copy with a fresh throttle clock: our own retry plan and
    daily cap pace deliveries, and Apprise's per-instance throttle would otherwise park a worker thread.
    """

    timeout_s: float = 30.0
    cache_size: int = 4096
    _plugins: OrderedDict[str, Any] = field(default_factory=OrderedDict, repr=False)
    # Idle, empty Apprise objects: making one looks up its locale's translation files on disk (a few stat
    # calls, each handing the GIL to the send threads), so each is reused by one send at a time.
    _idle: list[Apprise] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        install_log_guard()
        self._asset = AppriseAsset(secure_logging=True)

    async def _plugin(self, url: str) -> Any | None:
        plugin = self._plugins.get(url)
        if plugin is None:
            # Parsing costs a few milliseconds of CPU: keep it off the event loop.
            plugin = await asyncio.to_thread(Apprise.instantiate, url, asset=self._asset)
            if plugin is None:
                return None
            self._plugins[url] = plugin
            if len(self._plugins) > self.cache_size:
                self._plugins.popitem(last=False)
        else:
            self._plugins.move_to_end(url)
        fresh = copy.copy(plugin)
        fresh._last_io_datetime = None
        return fresh

    def forget(self) -> None:
        """Drop every cached plugin (they hold decrypted URLs), e.g. after a household is erased."""
        self._plugins.clear()

    async def send(self, url: str, message: Rendered) -> SendResult:
        plugin = await self._plugin(url)
        if plugin is None:
            return SendResult(False, f"{message.kind} channel could not be loaded")
        notifier = self._idle.pop() if self._idle else Apprise(asset=self._asset)
        notifier.add(plugin)
        html = message.kind is ChannelKind.EMAIL and message.html is not None
        try:
            result = await asyncio.wait_for(
                notifier.async_notify(
                    title=message.title, body=message.html if html else message.body,
                    body_format=NotifyFormat.HTML if html else NotifyFormat.TEXT,
                ),
                self.timeout_s,
            )
        except TimeoutError:  # the abandoned send may still hold this Apprise object: not reused
            return SendResult(False, f"{message.kind} delivery timed out after {self.timeout_s:.0f}s")
        except Exception as exc:  # noqa: BLE001 - Apprise should not raise; if it does, it is a failed attempt
            return SendResult(False, f"{message.kind} delivery raised {type(exc).__name__}")
        notifier.clear()
        self._idle.append(notifier)
        if result is None or not result:
            status = getattr(getattr(result, "status", None), "name", "no result")
            return SendResult(False, f"{message.kind} delivery failed ({str(status).lower()})")
        return SendResult(True)
