"""Delivery through Apprise's async API, channel validation, and the guard that keeps URLs out of logs.

Apprise logs channel URLs (masked, but custom headers such as `+X-Api-Key=` stay visible), request
payloads (Vonage's includes the API secret) and plugin errors quoting tokens; urllib3 logs request
paths, where some services put tokens. So below WARNING those records are dropped, and at WARNING
and above their text is replaced by where they came from. The guard sits on the emitting loggers,
so it holds whatever handlers the process (or a test) installs.

Sends in flight and CPU per send (issue 12): Apprise 2.3.0 runs every send, `async_notify` included, on
one module-level thread pool (`apprise.apprise.get_shared_executor`) of Python's default size (CPUs + 4: six
threads on two cores), with no setting; and each `async_notify` builds its calls, deadlines, retry runner
and result objects around the one plugin (0.9-1.5 ms of CPU per push in the burst). So the sender calls
the cached plugin's own `notify()` (Apprise's plugin still formats, converts and sends the message) on the
notifier's own pool, sized to twice the delivery concurrency, and its HTTP requests go over keep-alive
connections, a bounded pool per gateway host (`keepalive.KeepAlive`) instead of a new connection each.

Timeouts and unknown outcomes: a send cut off by our timeout may still arrive (the request may have
left), so it is reported as unknown, never as a plain failure. Each plugin's socket read timeout (four
seconds by default, reported by Apprise as an ordinary failure) is raised above our send timeout, so
a gateway that is slow to answer trips our timeout (unknown) rather than a plugin's (failure, retried at
once). A connection that cannot be made (refused, connect timeout) is still a plain failure: nothing left.

Why a send failed: Apprise reports only failure, never the HTTP status or headers. Its plugins send with
`requests`, on Apprise's pool, in a copy of the caller's context (`contextvars`), so `observe_http` wraps
`requests.adapters.HTTPAdapter.send` once: while a send of ours runs, each response's status and Retry-After
header (and each connection that could not be made) is noted in a list held by a context variable; other
code using `requests` in the process is passed straight through. `classify` turns the last exchange into the
retry policy's terms: 429, 408, 425 and 5xx or no connection are transient (retried in seconds, after
Retry-After when given, see `service.after_failure`); any other failure keeps the ordinary backoff.
Statuses and headers are kept in memory for the one send only and never logged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import functools
import logging
import math
import re
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from apprise import Apprise, AppriseAsset, NotifyFormat
from attune_contracts.messages import ChannelKind

from ..delivery import host_of
from ..links import fit_links
from ..ports import SendResult
from ..service import Rendered
from .keepalive import KEEPALIVE, KeepAlive, route_requests

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


# How far a plugin's socket read timeout is set beyond our send timeout (see the module docstring).
READ_TIMEOUT_HEADROOM_S = 5.0


# ---- what the gateway answered ---------------------------------------------------------------------

TRANSIENT_STATUSES = frozenset({408, 425, 429})  # and every 5xx


@dataclass(frozen=True)
class Exchange:
    """One HTTP request a plugin made: the status answered (None: no answer, see `connected`)."""

    status: int | None
    retry_after: str | None = None
    connected: bool = True  # False: the connection could not be made (refused, connect timeout): nothing left
    read_timeout: bool = False  # connected, sent, no answer in time: the message may have arrived


_EXCHANGES: contextvars.ContextVar[list[Exchange] | None] = contextvars.ContextVar("attune_http_exchanges",
                                                                                    default=None)
_OBSERVER_LOCK = threading.Lock()


def observe_http() -> None:
    """Wrap `requests`' HTTP adapter once per process so our sends learn what the gateway answered."""
    from requests import exceptions
    from requests.adapters import HTTPAdapter

    with _OBSERVER_LOCK:
        if getattr(HTTPAdapter.send, "_attune_observed", False):
            return
        original = HTTPAdapter.send

        def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            seen = _EXCHANGES.get()
            if seen is None:
                return original(self, request, *args, **kwargs)
            try:
                response = original(self, request, *args, **kwargs)
            except (exceptions.ConnectTimeout, exceptions.ProxyError, exceptions.SSLError):
                seen.append(Exchange(None, connected=False))
                raise
            except exceptions.ReadTimeout:
                seen.append(Exchange(None, read_timeout=True))
                raise
            except exceptions.ConnectionError as exc:
                # Refused or unreachable: urllib3 wraps a NewConnectionError; anything else (reset, remote
                # closed) may have come after the request left.
                connected = "NewConnectionError" not in repr(exc) and "NameResolutionError" not in repr(exc)
                seen.append(Exchange(None, connected=connected))
                raise
            seen.append(Exchange(response.status_code, response.headers.get("Retry-After")))
            return response

        send._attune_observed = True  # type: ignore[attr-defined]
        HTTPAdapter.send = send  # type: ignore[method-assign]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date (RFC 9110 10.2.3). None when
    absent or unreadable; 0 for a date already past. The caller caps it."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify(exchanges: list[Exchange], now: datetime | None = None) -> tuple[bool, float | None, str]:
    """(transient, retry_after_s, detail) from the last request a failed send made."""
    if not exchanges:
        return False, None, ""
    last = exchanges[-1]
    if last.status is not None:
        transient = last.status in TRANSIENT_STATUSES or 500 <= last.status <= 599
        after = parse_retry_after(last.retry_after, now) if transient else None
        return transient, after, f"HTTP {last.status}"
    if not last.connected:
        return True, None, "gateway unreachable"
    return False, None, "connection lost" if not last.read_timeout else "no answer in time"


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
    if any(unicodedata.category(ch) == "Cc" for ch in url):
        raise ChannelRejected("the channel URL contains a control character (such as NUL); percent-encode it "
                              "if the service really needs it")
    if any(unicodedata.category(ch) in ("Cs", "Cn", "Co", "Cf") for ch in url):
        raise ChannelRejected("the channel URL contains characters that are invalid or invisible "
                              "(lone surrogates, unassigned, private-use or formatting characters)")
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


class Handback:
    """The send threads' results, handed back to the event loop together.

    `asyncio.wrap_future` hands each thread's result back on its own: a `call_soon_threadsafe` (a write to the
    loop's self-pipe, a wake-up of the loop) and a chain of callbacks between two futures, per send. Here a
    thread that finishes a send queues its result, and only the first since the loop last looked wakes the loop;
    one callback there settles every result queued meanwhile. In a burst, with a busy loop and hundreds of
    sends in flight, one wake-up serves several sends."""

    def __init__(self) -> None:
        self._done: list[tuple[asyncio.Future[Any], bool, Any]] = []
        self._lock = threading.Lock()
        self._scheduled = False
        self.wakeups = 0  # how many times the loop was woken (tests)

    def run(self, loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[Any], call: Any) -> None:
        """In a send thread: `call()`, then its result (or exception) to `waiter`, on its loop."""
        try:
            item = (waiter, True, call())
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine, as a future's would be
            item = (waiter, False, exc)
        with self._lock:
            self._done.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            loop.call_soon_threadsafe(self._settle)
        except RuntimeError:  # the loop is closed: nobody waits any more
            with self._lock:
                self._scheduled = False

    def _settle(self) -> None:
        with self._lock:
            items, self._done, self._scheduled = self._done, [], False
        self.wakeups += 1
        for waiter, ok, value in items:
            if waiter.done():  # timed out or cancelled meanwhile
                continue
            if ok:
                waiter.set_result(value)
            else:
                waiter.set_exception(value)


@dataclass
class AppriseSender:
    """Sends one rendered message to one channel URL through its Apprise plugin. A false result is a failure.

    Parsing a URL into a plugin costs about as much CPU as sending (~3 ms), so plugins are kept per URL
    (bounded LRU, `cache_size`) and each send gets a shallow copy with a fresh throttle clock: our own retry
    plan and daily cap pace deliveries, and Apprise's per-instance throttle would otherwise park a worker
    thread. The copy's `notify()` runs on the sender's own pool (see the module docstring).
    """

    timeout_s: float = 15.0
    max_in_flight: int | None = None  # the delivery concurrency: the send pool has twice as many threads
    cache_size: int = 4096
    per_host: int | None = None  # keep-alive connections kept per gateway host (default: max_in_flight)
    _plugins: OrderedDict[str, Any] = field(default_factory=OrderedDict, repr=False)
    generation: int = 0  # how many times the cache was emptied (`forget`)

    def __post_init__(self) -> None:
        install_log_guard()
        self._asset = AppriseAsset(secure_logging=True)
        # Apprise imports its ~130 plugin modules on first use (4 s on a busy two-core machine): done here, at
        # start-up, so it is not charged to the first round's sends (whose timeout would call them unknown).
        from apprise.manager_plugins import NotificationManager

        _ = "json" in NotificationManager()
        observe_http()
        route_requests()
        concurrency = self.max_in_flight or 32
        # Twice the concurrency: a send we stopped waiting for (timed out) keeps its thread until the plugin's
        # read timeout, a few seconds later, while the delivery loop already runs the next send in its place.
        # Threads are started only when needed, so a large bound costs nothing at rest.
        self._pool = cf.ThreadPoolExecutor(max_workers=2 * concurrency, thread_name_prefix="attune-send")
        self.keepalive = KeepAlive(per_host=self.per_host or concurrency)
        self._handback = Handback()

    def _instantiate(self, url: str) -> Any | None:
        plugin = Apprise.instantiate(url, asset=self._asset)
        if plugin is not None and hasattr(plugin, "socket_read_timeout"):
            plugin.socket_read_timeout = self.timeout_s + READ_TIMEOUT_HEADROOM_S
        return plugin

    def _keep(self, url: str, plugin: Any) -> None:
        self._plugins[url] = plugin
        if len(self._plugins) > self.cache_size:
            self._plugins.popitem(last=False)

    async def warm(self, urls: list[str], chunk: int = 50) -> int:
        """Parse the plugins of channels not yet cached (oldest first, so the newest stay), a chunk per thread
        hand-off; return how many were added. A burst then pays no parsing: every member's first push of the
        day would otherwise be a cache miss (0.3-0.6 ms of CPU each)."""
        missing = [u for u in dict.fromkeys(urls) if u not in self._plugins][: self.cache_size]
        loop, added = asyncio.get_running_loop(), 0

        def parse(part: list[str]) -> list[tuple[str, Any]]:
            return [(u, p) for u in part if (p := self._instantiate(u)) is not None]

        for start in range(0, len(missing), chunk):
            for url, plugin in await loop.run_in_executor(self._pool, parse, missing[start:start + chunk]):
                if url not in self._plugins:
                    self._keep(url, plugin)
                    added += 1
        return added

    async def _plugin(self, url: str) -> Any | None:
        plugin = self._plugins.get(url)
        if plugin is None:
            # Parsing costs a few milliseconds of CPU: keep it off the event loop.
            plugin = await asyncio.get_running_loop().run_in_executor(self._pool, self._instantiate, url)
            if plugin is None:
                return None
            self._keep(url, plugin)
        else:
            self._plugins.move_to_end(url)
        # A shallow copy, as copy.copy makes it (Apprise's plugins define no __copy__, __getstate__ or __slots__),
        # without copy's reduce protocol: a fifth of the CPU.
        fresh = object.__new__(type(plugin))
        fresh.__dict__.update(plugin.__dict__)
        fresh._last_io_datetime = None
        return fresh

    def gateway(self, url: str) -> str:
        """Which gateway a URL sends to, for the per-host bound: the fixed API host of services that have one
        (Pushover, Telegram…: their URL's "host" is a token), else the URL's scheme, host and port. In memory
        only: never log it."""
        match = _SCHEMA.match(url)
        if match:
            from apprise.manager_plugins import NotificationManager

            manager, schema = NotificationManager(), match.group(1).lower()  # dict lookups once loaded
            fixed = getattr(manager[schema], "notify_url", None) if schema in manager else None
            if isinstance(fixed, str) and fixed.startswith(("http://", "https://")):
                return host_of(fixed)
        return host_of(url)

    def forget(self) -> None:
        """Drop every cached plugin (they hold decrypted URLs), e.g. after a household is erased."""
        self._plugins.clear()
        self.generation += 1  # the warmer starts over from every channel still stored

    def close(self) -> None:
        """Close the kept-alive connections; sends still running finish on their threads."""
        self._pool.shutdown(wait=False)
        self.keepalive.close()

    async def send(self, url: str, message: Rendered) -> SendResult:
        plugin = await self._plugin(url)
        if plugin is None:  # stored before Apprise stopped accepting it, say: retrying it cannot help
            return SendResult(False, f"{message.kind} channel could not be loaded by Apprise", broken=True)
        html = message.kind is ChannelKind.EMAIL and message.html is not None
        body = message.html if html else fit_links(message.body, message.link_text or "", plugin.body_maxlen)
        exchanges: list[Exchange] = []
        # Both copied into the send's thread with the context: what the gateway answered (observe_http), and
        # the keep-alive connections the plugin's requests go over.
        token, pooled = _EXCHANGES.set(exchanges), KEEPALIVE.set(self.keepalive)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        try:
            notify = functools.partial(
                contextvars.copy_context().run, plugin.notify, title=message.title, body=body,
                body_format=NotifyFormat.HTML if html else NotifyFormat.TEXT,
            )
            future = self._pool.submit(self._handback.run, loop, waiter, notify)
        finally:
            KEEPALIVE.reset(pooled)
            _EXCHANGES.reset(token)
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await waiter
        except TimeoutError:  # the thread may still be sending: its copy of the plugin is its own
            future.cancel()  # a send that has not started yet never starts
            return SendResult(False, f"{message.kind} delivery timed out after {self.timeout_s:g}s; it may still "
                                     f"arrive", unknown=True)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin should not raise; if it does, it is a failed attempt
            return SendResult(False, f"{message.kind} delivery raised {type(exc).__name__}")
        if not result:
            if exchanges and exchanges[-1].read_timeout:  # sent, no answer: it may still arrive
                return SendResult(False, f"{message.kind} delivery got no answer in time; it may still arrive",
                                  unknown=True)
            transient, after, detail = classify(exchanges)
            detail = f", {detail}" if detail else ""
            return SendResult(False, f"{message.kind} delivery failed (failure{detail})",
                              transient=transient, retry_after_s=after)
        return SendResult(True)
