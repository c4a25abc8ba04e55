"""Sends to web push channels through Apprise's `vapid://` plugin, with the key and subscription in memory.

See `attune_notifier.webpush` for why neither goes through the plugin's `keyfile=`/`subfile=` files. The
plugin signs the VAPID JWT (aud = the endpoint's origin), encrypts the payload (RFC 8291 aes128gcm) and
POSTs it to the subscription's endpoint. The payload is JSON the service worker reads
(services/app/attune_app/static/push/sw.js): {"title", "body", "url"}.

`SenderWithWebPush` puts this beside the ordinary Apprise sender: channel secrets that are web push
subscriptions come here, every other channel URL goes to the ordinary sender, untouched.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from apprise import Apprise, AppriseAsset, NotifyFormat
from apprise.common import PersistentStoreMode
from apprise.utils.pem import ApprisePEMController
from cryptography.hazmat.primitives.asymmetric import ec

from ..delivery import host_of
from ..ports import Sender, SendResult
from ..service import Rendered
from ..webpush import WebPushSubscription, is_webpush_secret
from .apprise_sender import (
    _EXCHANGES,
    READ_TIMEOUT_HEADROOM_S,
    Exchange,
    classify,
    install_log_guard,
    observe_http,
)

GONE_STATUSES = frozenset({404, 410})  # RFC 8030 §7.3: the subscription expired or was removed


class MemoryVapidKey(ApprisePEMController):
    """Apprise's PEM controller holding the VAPID key object: no key file, nothing generated or written."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, asset: AppriseAsset) -> None:
        super().__init__(path=None, asset=asset)  # type: ignore[arg-type]
        self._key = key

    def private_key(self, *names: str, autogen: bool | None = None, autodetect: bool = True) -> Any:
        return self._key

    def public_key(self, *names: str, autogen: bool | None = None, autodetect: bool = True) -> Any:
        return self._key.public_key()

    def load_private_key(self, path: str | None = None, *names: str) -> bool:
        return True  # the key is already here; never read from a path

    def keygen(self, name: str | None = None, force: bool = False) -> bool:
        return False  # never write keys to disk

    def __bool__(self) -> bool:
        return True


def payload_of(message: Rendered) -> str:
    """The JSON the service worker shows: title, body (without the link line other push channels carry) and url."""
    body = message.body.removesuffix("\n" + message.link_text) if message.link_text else message.body
    return json.dumps({"title": message.title, "body": body, "url": message.link}, ensure_ascii=False,
                      separators=(",", ":"))


@dataclass
class WebPushSender:
    key: ec.EllipticCurvePrivateKey
    contact: str  # the JWT's `sub` (mailto:): who a push service writes to about this sender
    ttl_s: int = 4 * 3600
    timeout_s: float = 15.0
    cache_size: int = 4096
    _plugins: OrderedDict[str, Any] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        install_log_guard()
        observe_http()
        # Memory only: the plugin would otherwise keep a store (and a starter subscriptions.json) on disk.
        self._asset = AppriseAsset(secure_logging=True, pem_autogen=False, storage_mode=PersistentStoreMode.MEMORY)
        self._pem = MemoryVapidKey(self.key, self._asset)

    @staticmethod
    def target_of(subscription: WebPushSubscription) -> str:
        return "s" + hashlib.sha256(subscription.endpoint.encode()).hexdigest()[:24]

    def apprise_url(self, subscription: WebPushSubscription) -> str:
        local, _, domain = self.contact.partition("@")
        return f"vapid://{quote(local, safe='')}@{quote(domain, safe='')}/{self.target_of(subscription)}?image=no"

    def _build(self, secret: str) -> Any | None:
        """A vapid plugin for one subscription (a few ms of CPU: run off the event loop)."""
        subscription = WebPushSubscription.from_secret(secret)
        plugin = Apprise.instantiate(self.apprise_url(subscription), asset=self._asset)
        if plugin is None:
            return None
        plugin.pem = self._pem
        if not plugin.subscriptions.add(subscription.as_dict(), name=self.target_of(subscription)):
            return None
        plugin.ttl = self.ttl_s  # the URL's ttl stops at 60 s; a reminder may wait hours for a phone to wake
        plugin.socket_read_timeout = self.timeout_s + READ_TIMEOUT_HEADROOM_S
        return plugin

    async def _plugin(self, secret: str) -> Any | None:
        plugin = self._plugins.get(secret)
        if plugin is None:
            plugin = await asyncio.to_thread(self._build, secret)
            if plugin is None:
                return None
            self._plugins[secret] = plugin  # the cache is touched on the event loop only
            if len(self._plugins) > self.cache_size:
                self._plugins.popitem(last=False)
        else:
            self._plugins.move_to_end(secret)
        fresh = copy.copy(plugin)
        fresh._last_io_datetime = None
        return fresh

    def gateway(self, secret: str) -> str:
        try:
            return WebPushSubscription.from_secret(secret).origin
        except (ValueError, KeyError, TypeError):
            return "webpush"

    def forget(self) -> None:
        self._plugins.clear()

    async def send(self, secret: str, message: Rendered) -> SendResult:
        try:
            plugin = await self._plugin(secret)
        except (ValueError, KeyError, TypeError):  # a stored subscription that no longer reads
            plugin = None
        if plugin is None:
            return SendResult(False, "web push subscription could not be loaded", broken=True)
        notifier = Apprise(asset=self._asset)
        notifier.add(plugin)
        exchanges: list[Exchange] = []
        token = _EXCHANGES.set(exchanges)
        try:
            result = await asyncio.wait_for(
                notifier.async_notify(title="", body=payload_of(message), body_format=NotifyFormat.TEXT),
                self.timeout_s)
        except TimeoutError:
            return SendResult(False, f"web push delivery timed out after {self.timeout_s:g}s; it may still arrive",
                              unknown=True)
        except Exception as exc:  # noqa: BLE001 - Apprise should not raise; if it does, it is a failed attempt
            return SendResult(False, f"web push delivery raised {type(exc).__name__}")
        finally:
            _EXCHANGES.reset(token)
        if result:
            return SendResult(True)
        if exchanges and exchanges[-1].status in GONE_STATUSES:
            # The plugin has dropped it from its manager too; the cached copy is of no more use.
            self._plugins.pop(secret, None)
            return SendResult(False, f"the push service says this subscription is gone (HTTP "
                                     f"{exchanges[-1].status})", broken=True, gone=True)
        if exchanges and exchanges[-1].read_timeout:
            return SendResult(False, "web push delivery got no answer in time; it may still arrive", unknown=True)
        transient, after, detail = classify(exchanges)
        return SendResult(False, "web push delivery failed" + (f" ({detail})" if detail else ""),
                          transient=transient, retry_after_s=after)


@dataclass
class SenderWithWebPush:
    """Web push subscriptions to `webpush`, every other channel URL to `other` (the ordinary Apprise sender)."""

    other: Sender
    webpush: WebPushSender

    async def send(self, url: str, message: Rendered) -> SendResult:
        if is_webpush_secret(url):
            return await self.webpush.send(url, message)
        return await self.other.send(url, message)

    def gateway(self, url: str) -> str:
        if is_webpush_secret(url):
            return self.webpush.gateway(url)
        gateway = getattr(self.other, "gateway", None)
        return gateway(url) if gateway is not None else host_of(url)

    def forget(self) -> None:
        self.webpush.forget()
        forget = getattr(self.other, "forget", None)
        if forget is not None:
            forget()

    def close(self) -> None:
        """The Apprise sender's kept-alive connections and send threads (bootstrap closes the worker's sender)."""
        close = getattr(self.other, "close", None)
        if close is not None:
            close()
