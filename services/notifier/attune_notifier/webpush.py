"""Web Push (RFC 8030/8291/8292) to a member's phone with no third-party app, through Apprise's `vapid://` plugin.

The browser (the household's PWA) subscribes with the notifier's VAPID public key and hands over its
subscription: an endpoint at its push service plus the browser's P-256 public key (`p256dh`) and auth
secret. The notifier keeps that subscription as a `push` channel, encrypted at rest like every channel
URL (the stored form is `webpush:` + the subscription's JSON, see `WebPushSubscription.to_secret`), and
at send time builds the `vapid://` URL for it.

Why not `vapid://…?keyfile=…&subfile=…` as the plugin's documentation shows: both are paths (or remote
URLs) the plugin reads, so the VAPID private key and every member's subscription would sit in files on
the notifier's disk, and a member registering such a URL by hand could make the notifier read any local
file or fetch any URL. Instead the plugin is given both in memory: the subscription through its
subscription manager's `add`, and the key through a PEM controller that holds the key object
(`MemoryVapidKey`). A generic channel URL starting with `vapid://` is refused (api.py): web push comes in
only as a subscription.

A 404 or 410 from the push service means the subscription is gone (the person unsubscribed, cleared the
site's data or reinstalled): the channel is retired (never tried again, shown as retired) instead of being
retried.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

SECRET_PREFIX = "webpush:"  # noqa: S105 - the marker of a stored subscription, not a secret
# The P-256 order: a derived private scalar must lie in [1, n-1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
MAKE_VAPID_KEY = "python -m attune_notifier.webpush"
# Development only: derived from a fixed seed so a browser's subscription survives a restart; refused elsewhere.
DEV_VAPID_SEED = b"attune-notifier-vapid-development-only"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def development_private_key_text() -> str:
    scalar = int.from_bytes(hashlib.sha256(DEV_VAPID_SEED).digest(), "big") % (_P256_ORDER - 1) + 1
    return b64url(scalar.to_bytes(32, "big"))


DEV_VAPID_PRIVATE_KEY = development_private_key_text()


def load_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """A VAPID private key as the usual tools print it: the raw 32-byte P-256 scalar in base64url (web-push's
    `generate-vapid-keys`), or a PEM (PKCS#8 or SEC1). Raises ValueError without quoting the value."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            raw = b64url_decode(text)
            if len(raw) != 32:
                raise ValueError("not 32 bytes")
            key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except (ValueError, TypeError):
        raise ValueError("the VAPID private key must be a P-256 key: 32 bytes in base64url, or a PEM; make one "
                         f"with: {MAKE_VAPID_KEY}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the VAPID private key must be on the P-256 curve (prime256v1)")  # noqa: TRY004 - one error type
    return key


def public_key_text(key: ec.EllipticCurvePrivateKey) -> str:
    """The applicationServerKey a browser subscribes with: the uncompressed public point, base64url."""
    return b64url(key.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint))


class SubscriptionRejected(ValueError):
    """Why a subscription was refused; never quotes its keys (the endpoint is a capability URL too)."""


def host_allowed(host: str, allowed: list[str]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in allowed:
        pattern = pattern.strip().lower()
        if not pattern:
            continue
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


@dataclass(frozen=True)
class WebPushSubscription:
    """What a browser's `PushSubscription.toJSON()` gives: the endpoint and its two keys, checked."""

    endpoint: str
    p256dh: str
    auth: str

    @classmethod
    def checked(cls, endpoint: str, p256dh: str, auth: str, *, allowed_hosts: list[str]) -> WebPushSubscription:
        endpoint = endpoint.strip()
        try:
            parts = urlsplit(endpoint)
            port = parts.port
        except ValueError:
            raise SubscriptionRejected("the endpoint is not a URL") from None
        if parts.scheme != "https" or not parts.hostname:
            raise SubscriptionRejected("the endpoint must be an https:// URL at a push service")
        if parts.username is not None or parts.password is not None or parts.fragment or port == 0:
            raise SubscriptionRejected("the endpoint must not carry credentials, a fragment or port 0")
        if not host_allowed(parts.hostname, allowed_hosts):
            raise SubscriptionRejected(
                "the endpoint is not at a push service this notifier sends to (ATTUNE_NOTIFIER_WEBPUSH_PUSH_HOSTS)")
        try:
            point = b64url_decode(p256dh)
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        except (ValueError, TypeError):
            raise SubscriptionRejected("keys.p256dh is not a P-256 public key in base64url") from None
        try:
            secret = b64url_decode(auth)
        except (ValueError, TypeError):
            raise SubscriptionRejected("keys.auth is not base64url") from None
        if len(secret) != 16:
            raise SubscriptionRejected("keys.auth must be 16 bytes (RFC 8291)")
        return cls(endpoint, b64url(point), b64url(secret))

    @property
    def origin(self) -> str:
        """The push service's origin: the JWT audience, and the gateway for the per-host bound."""
        parts = urlsplit(self.endpoint)
        port = f":{parts.port}" if parts.port not in (None, 443) else ""
        return f"https://{parts.hostname}{port}"

    def as_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}

    def to_secret(self) -> str:
        return SECRET_PREFIX + json.dumps(self.as_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_secret(cls, secret: str) -> WebPushSubscription:
        data = json.loads(secret.removeprefix(SECRET_PREFIX))
        return cls(data["endpoint"], data["keys"]["p256dh"], data["keys"]["auth"])


def is_webpush_secret(secret: str) -> bool:
    return secret.startswith(SECRET_PREFIX)


def generate_private_key_text() -> str:
    """A new VAPID private key, as ATTUNE_NOTIFIER_VAPID_PRIVATE_KEY takes it (32 bytes, base64url)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def main() -> None:
    """Print a new VAPID key pair: the private key for ATTUNE_NOTIFIER_VAPID_PRIVATE_KEY (a secret) and the
    public key (what GET /v1/webpush/vapid-public-key will serve)."""
    text = generate_private_key_text()
    print(f"ATTUNE_NOTIFIER_VAPID_PRIVATE_KEY={text}")
    print(f"# public key: {public_key_text(load_private_key(text))}")


if __name__ == "__main__":
    main()
