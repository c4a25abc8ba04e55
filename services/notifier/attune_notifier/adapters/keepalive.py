"""Keep-alive connections for Apprise's HTTP sends, a bounded pool per gateway host.

Apprise's plugins send with `requests.post(...)` (and `get`, `put`, `request`), which makes a new
`requests.Session` for every call: a new TCP (and TLS) connection per push, and a scan of the proxy
environment variables on every request. In the 19:00 burst that was 0.65-1.5 ms of CPU per push, beside
the gateway's own answer time (issue 12).

`route_requests()` wraps `requests.api.request` once per process. While a send of ours runs (the context
variable `KEEPALIVE` is set, and copied into the send's thread with the context), each request goes
through one long-lived `Session` per gateway host (scheme, host, port) instead; any other code in the
process that uses `requests` is passed straight through. Each host's session keeps at most `per_host` idle
connections (the delivery loop sends no more than that to one gateway at once, so they are all reused);
at most `hosts` sessions are kept, the least recently used closed first.

What a shared session must not share between people:
- cookies: a gateway's cookie set for one person's request would ride along on the next person's. The
  sessions' cookie jars accept none (a request's own `cookies=` still go out with that request only);
- credentials: none are stored on the session. Apprise passes auth and headers with each request, and
  `.netrc` is not read (a channel's credentials are in its URL).
The environment (HTTP(S)_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) is read once per host when
its session is made, not on every request, so a change to it needs a restart.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections import OrderedDict
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.api
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

KEEPALIVE: contextvars.ContextVar[KeepAlive | None] = contextvars.ContextVar("attune_keepalive", default=None)
_ROUTE_LOCK = threading.Lock()


def _host_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{parts.port or ''}"


class _NoCookies(DefaultCookiePolicy):
    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False


class KeepAlive:
    """Sessions per gateway host, each keeping up to `per_host` connections open between sends."""

    def __init__(self, per_host: int, hosts: int = 512) -> None:
        self.per_host, self.hosts = max(1, per_host), max(1, hosts)
        self._sessions: OrderedDict[str, requests.Session] = OrderedDict()
        self._ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self._lock = threading.Lock()

    def session(self, url: str) -> requests.Session:
        key = _host_key(url)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
                return session
            session = self._new_session(url)
            self._sessions[key] = session
            evicted = self._sessions.popitem(last=False)[1] if len(self._sessions) > self.hosts else None
        if evicted is not None:
            evicted.close()  # idle connections closed; one in use is dropped when its request ends
        return session

    def _new_session(self, url: str) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # read below, once, instead of on every request
        session.proxies.update(get_environ_proxies(url))
        session.cookies.set_policy(_NoCookies())
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.per_host)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        if self._ca_bundle and kwargs.get("verify", True) is True:
            kwargs["verify"] = self._ca_bundle  # as requests does with trust_env
        return self.session(url).request(method=method, url=url, **kwargs)

    def connections(self) -> dict[str, tuple[int, int]]:
        """Per host: (connections made so far, connections open and idle now). For tests; never log the keys."""
        with self._lock:
            sessions = list(self._sessions.items())
        counts: dict[str, tuple[int, int]] = {}
        for key, session in sessions:
            adapter = session.get_adapter("https://" if key.startswith("https") else "http://")
            pools = [adapter.poolmanager.pools[k] for k in adapter.poolmanager.pools.keys()]  # noqa: SIM118 - no iteration
            counts[key] = (sum(p.num_connections for p in pools),
                           sum(c is not None for p in pools for c in list(p.pool.queue)))
        return counts

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), OrderedDict()
        for session in sessions:
            session.close()


def route_requests() -> None:
    """Send `requests`' module-level calls through `KEEPALIVE` while it is set (once per process)."""
    with _ROUTE_LOCK:
        if getattr(requests.api.request, "_attune_keepalive", False):
            return
        original = requests.api.request

        def request(method: str, url: str, **kwargs: Any) -> requests.Response:
            pool = KEEPALIVE.get()
            if pool is None:
                return original(method, url, **kwargs)
            return pool.request(method, url, **kwargs)

        request._attune_keepalive = True  # type: ignore[attr-defined]
        requests.api.request = request  # requests.post/get/put look it up here at each call
        requests.request = request
