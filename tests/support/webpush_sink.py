"""A local Web Push endpoint that plays both the browser and its push service, for tests.

- `subscribe()` does what a browser does when a page calls `pushManager.subscribe`: a fresh P-256 key pair
  and 16-byte auth secret, and an endpoint URL at this server. `.as_json()` is `PushSubscription.toJSON()`.
- Each POST to an endpoint is checked as a push service checks it (RFC 8292): an `Authorization: vapid t=<JWT>,
  k=<public key>` header whose ES256 signature verifies with `k`, whose `aud` is this server's origin, whose
  `exp` is in the future and at most 24 hours ahead, with a `sub`; when `expected_public_key` is set, `k`
  must be it (the notifier's key). Then the body is decrypted as the browser would (RFC 8291 aes128gcm,
  with `http-ece` and the subscription's private key) and recorded in `received`; a push that fails a check
  is answered 401/400 and recorded in `rejected` with why.
- `gone(subscription)` makes its endpoint answer 410 Gone from then on, as a push service does once the
  person has unsubscribed.

Apprise's vapid plugin posts only to https:// endpoints, so the server runs TLS with its own throw-away CA:
point the sender at `ca_file` (`REQUESTS_CA_BUNDLE=...` for a process that sends with `requests`).

It runs on its own thread and event loop, so a synchronous test (a browser test) can use it as well as an
async one: `with WebPushSink() as sink: ...`.

For a browser test with a notifier process (tests/notifier/test_webpush_process.py shows the settings):
ATTUNE_NOTIFIER_VAPID_PRIVATE_KEY, ATTUNE_NOTIFIER_WEBPUSH_PUSH_HOSTS=127.0.0.1 and REQUESTS_CA_BUNDLE=sink.ca_file
in its environment. Headless Chromium reaches no push service, so replace `PushManager.prototype.subscribe` in
the page with one returning `{toJSON: () => sink.subscribe("ana").as_json()}` (tests/webpush/
test_subscribe_browser.py does); subscribe.js then posts that subscription as it would a real one.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import http_ece
import uvicorn
from attune_contracts.sealing import FieldKeys
from attune_runtime.tansu import free_port
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class BrowserSubscription:
    """What a browser holds for one push subscription: the public part is what it hands to the app."""

    name: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes

    @property
    def p256dh(self) -> str:
        return b64url(self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))

    def as_json(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth_secret)}}


@dataclass
class Push:
    """One push as the browser's service worker would get it, with what the push service saw."""

    subscription: str
    payload: bytes
    claims: dict[str, Any]
    vapid_public_key: str
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.payload.decode()

    @property
    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Rejected:
    subscription: str | None
    status: int
    reason: str


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for 127.0.0.1 signed by it: (ca, cert, key) PEM files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Attune test push service CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(paths[2], 0o600)
    return paths


class VapidRefused(ValueError):
    pass


def check_vapid(authorization: str, audience: str, expected_key: str | None) -> tuple[dict[str, Any], str]:
    """The claims and public key of a valid `vapid t=..., k=...` header (RFC 8292), or VapidRefused."""
    scheme, _, rest = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise VapidRefused(f"Authorization scheme {scheme!r}, not vapid")
    params = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
    token, key = params.get("t"), params.get("k")
    if not token or not key:
        raise VapidRefused("vapid Authorization without t= and k=")
    if expected_key is not None and key != expected_key:
        raise VapidRefused("signed with another key than the subscription's applicationServerKey")
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(b64url_decode(header_b64))
        claims = json.loads(b64url_decode(claims_b64))
        signature = b64url_decode(signature_b64)
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
    except (ValueError, TypeError) as exc:
        raise VapidRefused(f"malformed JWT or key ({type(exc).__name__})") from None
    if header.get("alg") != "ES256" or len(signature) != 64:
        raise VapidRefused("the JWT is not ES256")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VapidRefused("the JWT signature does not verify with k") from None
    if claims.get("aud") != audience:
        raise VapidRefused(f"aud {claims.get('aud')!r} is not this push service's origin {audience!r}")
    now = time.time()
    if not isinstance(claims.get("exp"), int) or not now < claims["exp"] <= now + 24 * 3600 + 60:
        raise VapidRefused("exp is missing, past, or more than 24 hours ahead")
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        raise VapidRefused("sub is not a mailto: or https: contact")
    return claims, key


@dataclass
class WebPushSink:
    expected_public_key: str | None = None  # the notifier's VAPID public key; None accepts any valid signature
    port: int = field(default_factory=free_port)
    received: list[Push] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    _subscriptions: dict[str, BrowserSubscription] = field(default_factory=dict)
    _gone: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="webpush-sink-")
        self.ca_file, self._cert, self._key = _tls_files(Path(self._dir.name))
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def subscribe(self, name: str = "phone") -> BrowserSubscription:
        token = secrets.token_urlsafe(16)
        subscription = BrowserSubscription(name, f"{self.origin}/push/{token}",
                                           ec.generate_private_key(ec.SECP256R1()), os.urandom(16))
        self._subscriptions[token] = subscription
        return subscription

    def gone(self, subscription: BrowserSubscription) -> None:
        self._gone.add(subscription.endpoint.rsplit("/", 1)[1])

    def pushes_for(self, subscription: BrowserSubscription) -> list[Push]:
        with self._lock:
            return [p for p in self.received if p.subscription == subscription.name]

    # ---- the server ----------------------------------------------------------------------------

    def start(self) -> WebPushSink:
        config = uvicorn.Config(self._app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                                log_config=None, ssl_certfile=str(self._cert), ssl_keyfile=str(self._key),
                                lifespan="off", interface="asgi3", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=asyncio.run, args=(self._server.serve(),), daemon=True,
                                        name="webpush-sink")
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the web push sink did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._dir.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status = self._handle(scope, body)
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    def _refuse(self, subscription: BrowserSubscription | None, status: int, reason: str) -> int:
        with self._lock:
            self.rejected.append(Rejected(subscription.name if subscription else None, status, reason))
        return status

    def _handle(self, scope: dict[str, Any], body: bytes) -> int:
        path: str = scope["path"]
        token = path.removeprefix("/push/")
        subscription = self._subscriptions.get(token) if path.startswith("/push/") else None
        if scope["method"] != "POST" or subscription is None:
            return self._refuse(None, 404, f"{scope['method']} {path}: no such subscription")
        if token in self._gone:
            return self._refuse(subscription, 410, "unsubscribed")
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            claims, key = check_vapid(headers.get("authorization", ""), self.origin, self.expected_public_key)
        except VapidRefused as exc:
            return self._refuse(subscription, 401, str(exc))
        if headers.get("content-encoding") != "aes128gcm" or "ttl" not in headers:
            return self._refuse(subscription, 400, "not Content-Encoding: aes128gcm with a TTL header")
        try:
            payload = http_ece.decrypt(body, private_key=subscription.private_key,
                                       auth_secret=subscription.auth_secret, version="aes128gcm")
        except Exception as exc:  # noqa: BLE001 - whatever http-ece raises, the browser would drop it
            return self._refuse(subscription, 400, f"payload does not decrypt ({type(exc).__name__})")
        with self._lock:
            self.received.append(Push(subscription.name, payload, claims, key, headers))
        return 201


# The field keys of the production notifier notifier_env starts: a test seals what it publishes with these.
FIELD_KEYS = "wp:" + base64.urlsafe_b64encode(os.urandom(32)).decode()


def notifier_field_keys() -> FieldKeys:
    return FieldKeys.parse(FIELD_KEYS)


def notifier_env(sink: WebPushSink, *, kafka_bootstrap: str, port: int, folder: Path, credential_keys: str,
                 vapid_private_key: str, link_kid: str) -> dict[str, str]:
    """The environment of a notifier process in production mode that pushes to `sink`: the VAPID key, the
    local push service allowed as a push host, and trust in its CA (what a browser test sets)."""
    from cryptography.fernet import Fernet

    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")},
        "ATTUNE_NOTIFIER_ENVIRONMENT": "production",
        "ATTUNE_NOTIFIER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ATTUNE_NOTIFIER_HTTP_HOST": "127.0.0.1",
        "ATTUNE_NOTIFIER_HTTP_PORT": str(port),
        "ATTUNE_NOTIFIER_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/notifier.db",
        "ATTUNE_NOTIFIER_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "ATTUNE_NOTIFIER_CONSUMER_GROUP": f"attune-notifier-{secrets.token_hex(3)}",
        "ATTUNE_NOTIFIER_CREDENTIAL_KEYS": credential_keys,
        "ATTUNE_NOTIFIER_CHANNEL_KEY": Fernet.generate_key().decode(),
        "ATTUNE_NOTIFIER_LINK_KEYS": f"{link_kid}:a-real-link-key-0123456789abcdef",
        "ATTUNE_NOTIFIER_LINK_KID": link_kid,
        "ATTUNE_NOTIFIER_CHECKINS_PUBLIC_URL": "https://checkins.example.org",
        "ATTUNE_NOTIFIER_DELIVERY_IDLE_POLL_S": "0.2",
        "ATTUNE_NOTIFIER_DEAD_LETTER_KEY": Fernet.generate_key().decode(),
        "ATTUNE_NOTIFIER_FIELD_KEYS": FIELD_KEYS,
        "ATTUNE_NOTIFIER_VAPID_PRIVATE_KEY": vapid_private_key,
        "ATTUNE_NOTIFIER_VAPID_CONTACT": "webpush@attune.example.org",
        "ATTUNE_NOTIFIER_WEBPUSH_PUSH_HOSTS": "127.0.0.1",
        "REQUESTS_CA_BUNDLE": str(sink.ca_file),
    }
