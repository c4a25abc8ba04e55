"""Issue 13, fail closed: what an attacker tries against a deployment that forgot a variable, kept a
development key, or pushes too much or too often at an HTTP API. Each test names the line of SECURITY.md
it proves (see /work/notes/failclosed.md)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
import uvicorn
from attune_checkins.bootstrap import build as build_checkins
from attune_checkins.config import DEV_LINK_KEYS, DEV_NOTES_KEY
from attune_checkins.config import Settings as CheckinsSettings
from attune_contracts.credentials import CredentialIssuer, generate_key_pair
from attune_contracts.links import LinkAction, LinkSigner
from attune_notifier.adapters.sql import migrate
from attune_notifier.bootstrap import build_app as build_notifier
from attune_notifier.config import DEV_CHANNEL_KEY, NotifierSettings
from attune_notifier.webpush import generate_private_key_text
from attune_runtime.settings import Environment, ServiceSettings
from attune_runtime.tansu import free_port
from attune_runtime.testing import eventually
from attune_scheduler.config import SchedulerSettings
from cryptography.fernet import Fernet
from itsdangerous import URLSafeSerializer
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError

NOBODY = "127.0.0.1:1"  # no broker: the HTTP layer answers without one
DEV_LINK_SECRET = DEV_LINK_KEYS.partition(":")[2]
REAL_LINK_KEYS = "2027a:a-real-link-key-0123456789abcdef"
SIGNING_KEY, CREDENTIAL_KEYS = generate_key_pair("2027a")
DEAD_LETTER_KEY = SecretStr(Fernet.generate_key().decode())
FIELD_KEYS = SecretStr(f"2027a:{base64.urlsafe_b64encode(os.urandom(32)).decode()}")
REAL = {
    "checkins": {"notes_key": SecretStr(Fernet.generate_key().decode()), "credential_keys": CREDENTIAL_KEYS,
                 "link_keys": SecretStr(REAL_LINK_KEYS), "dead_letter_key": DEAD_LETTER_KEY,
                 "field_keys": FIELD_KEYS},
    "notifier": {"credential_keys": CREDENTIAL_KEYS, "dead_letter_key": DEAD_LETTER_KEY, "field_keys": FIELD_KEYS,
                 "channel_key": SecretStr(Fernet.generate_key().decode()),
                 "link_keys": SecretStr(REAL_LINK_KEYS), "link_kid": "2027a",
                 "vapid_private_key": SecretStr(generate_private_key_text())},
}


def without_attune_variables() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")}


# ---- production is the default; a service without its secrets does not start ----------------------

@pytest.mark.unit
def test_production_is_the_default_environment() -> None:
    """operator — forgets ENVIRONMENT — the service runs as production and checks every secret."""
    assert ServiceSettings().environment is Environment.PRODUCTION
    with pytest.raises(ValidationError, match="ATTUNE_SCHEDULER_CREDENTIAL_KEYS must be set outside development"):
        SchedulerSettings()
    with pytest.raises(ValidationError, match="ATTUNE_SCHEDULER_DEAD_LETTER_KEY is missing"):
        SchedulerSettings(credential_keys=CREDENTIAL_KEYS)
    with pytest.raises(ValidationError, match="ATTUNE_SCHEDULER_FIELD_KEYS is missing"):
        SchedulerSettings(credential_keys=CREDENTIAL_KEYS, dead_letter_key=DEAD_LETTER_KEY)
    assert SchedulerSettings(credential_keys=CREDENTIAL_KEYS, dead_letter_key=DEAD_LETTER_KEY,
                             field_keys=FIELD_KEYS).environment is Environment.PRODUCTION
    with pytest.raises(ValidationError, match="ATTUNE_CHECKINS_NOTES_KEY is missing"):
        CheckinsSettings()
    with pytest.raises(ValidationError, match="ATTUNE_NOTIFIER_CREDENTIAL_KEYS must be set outside development"):
        NotifierSettings()


@pytest.mark.unit
@pytest.mark.parametrize(("module", "variable", "recipe"), [
    ("attune_checkins", "ATTUNE_CHECKINS_NOTES_KEY", "Fernet.generate_key()"),
    ("attune_notifier", "ATTUNE_NOTIFIER_CREDENTIAL_KEYS", "attune credentials keygen"),
    ("attune_scheduler", "ATTUNE_SCHEDULER_CREDENTIAL_KEYS", "attune credentials keygen"),
])
def test_a_service_started_without_its_secrets_exits_naming_the_variable(
        module: str, variable: str, recipe: str, tmp_path: Path) -> None:
    """operator — starts a service with no environment — it exits non-zero, naming the variable and how
    to make a value; nothing listens."""
    run = subprocess.run([sys.executable, "-m", module], env=without_attune_variables(), cwd=tmp_path,
                         check=False, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert variable in run.stderr and recipe in run.stderr, run.stderr
    assert "Traceback" not in run.stderr, run.stderr[-2000:]  # a message for a person, not a stack


@pytest.mark.unit
def test_a_signing_kid_missing_from_the_key_list_is_named_at_start_up() -> None:
    """operator — sets link keys but forgets which kid signs — a message naming the variable, not a crash."""
    with pytest.raises(ValidationError, match="ATTUNE_NOTIFIER_LINK_KID \\('dev'\\) must name one of the key ids"):
        NotifierSettings(environment="production", **{**REAL["notifier"], "link_kid": "dev"})
    with pytest.raises(ValidationError, match="ATTUNE_CHECKINS_LINK_CURRENT_KID \\('2026'\\) must name one"):
        CheckinsSettings(environment="production", link_current_kid="2026", **REAL["checkins"])


# ---- development keys are refused in any key list outside development ------------------------------

MIXED = [
    ("checkins", "link_keys", SecretStr(f"{REAL_LINK_KEYS},dev:{DEV_LINK_SECRET}"), "ATTUNE_CHECKINS_LINK_KEYS"),
    ("checkins", "link_keys", SecretStr(f"{REAL_LINK_KEYS},old:{DEV_LINK_SECRET}"), "ATTUNE_CHECKINS_LINK_KEYS"),
    ("checkins", "notes_key", SecretStr(DEV_NOTES_KEY), "ATTUNE_CHECKINS_NOTES_KEY"),
    ("checkins", "notes_old_keys", SecretStr(f"{Fernet.generate_key().decode()},{DEV_NOTES_KEY}"),
     "ATTUNE_CHECKINS_NOTES_OLD_KEYS"),
    ("notifier", "link_keys", SecretStr(f"{REAL_LINK_KEYS},dev:{DEV_LINK_SECRET}"), "ATTUNE_NOTIFIER_LINK_KEYS"),
    ("notifier", "channel_key", SecretStr(f"{Fernet.generate_key().decode()},{DEV_CHANNEL_KEY}"),
     "ATTUNE_NOTIFIER_CHANNEL_KEY"),
]


@pytest.mark.unit
@pytest.mark.parametrize(("service", "field", "value", "variable"), MIXED,
                         ids=[f"{s}-{f}-{i}" for i, (s, f, _, _) in enumerate(MIXED)])
def test_a_key_list_mixing_a_real_key_with_a_development_one_fails_start_up(
        service: str, field: str, value: SecretStr, variable: str) -> None:
    """operator — keeps the published development key beside real ones — start-up refuses, naming the list."""
    cls: Any = CheckinsSettings if service == "checkins" else NotifierSettings
    for environment in ("production", "test"):
        with pytest.raises(ValidationError, match=f"{variable} is unset or holds a development key"):
            cls(environment=environment, **{**REAL[service], field: value})
    assert cls(environment="production", **REAL[service])  # the same settings with real keys only start
    assert cls(environment="development", **{**REAL[service], field: value})


@pytest.fixture
async def production_checkins(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    class Sink:
        async def send_all(self, records: Any) -> None:
            return None

    settings = CheckinsSettings(environment="production", kafka_bootstrap_servers=NOBODY,
                                database_url=f"sqlite+aiosqlite:///{tmp_path}/checkins.db", **REAL["checkins"])
    parts = build_checkins(settings, sink=Sink(), registry=CollectorRegistry(), run_timer=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=parts.http), base_url="http://checkins") as client:
        yield parts, client
    await parts.store.close()


def link(signer: LinkSigner) -> str:
    return signer.mint(household_id=uuid4(), occurrence_id=uuid4(), member_id=uuid4(), action=LinkAction.DONE)


def failures(parts: Any, reason: str) -> float:
    return parts.registry.get_sample_value("attune_checkins_link_failures_total", {"reason": reason}) or 0


@pytest.mark.integration
async def test_a_forged_dev_link_does_not_verify_in_production(production_checkins: Any) -> None:
    """attacker — forges a one-tap link with the published development key — a 400 page, nothing recorded."""
    parts, client = production_checkins
    forged = link(LinkSigner({"dev": DEV_LINK_SECRET}, "dev"))
    for method in ("GET", "POST"):
        response = await client.request(method, f"/l/{forged}", data={"closeness": "5"})
        assert response.status_code == 400, response.text
        assert "text/html" in response.headers["content-type"]
        assert "no longer use" in response.text
    assert failures(parts, "unknown_key") == 2
    # The same forgery under the kid production uses: the signature does not match.
    forged_as_ours = link(LinkSigner({"2027a": DEV_LINK_SECRET}, "2027a"))
    response = await client.get(f"/l/{forged_as_ours}")
    assert response.status_code == 400 and "not made by Attune" in response.text
    assert failures(parts, "bad_signature") == 1


# ---- one-tap links: HMAC-SHA256, old SHA-1 links refused with a clear page ------------------------

@pytest.mark.unit
def test_links_are_signed_with_hmac_sha256() -> None:
    """attacker — attacks the link signature — it is HMAC-SHA256 (32 bytes), salt attune.checkin-link.v2."""
    token = link(LinkSigner({"2027a": REAL_LINK_KEYS.partition(":")[2]}, "2027a"))
    signature = token.rpartition(".")[2]
    assert len(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))) == 32
    # Rotation by kid is kept: a link minted under the old kid still verifies while that key is listed.
    keys = {"2027a": "first-long-secret-0123", "2027b": "second-long-secret-0123"}
    old = link(LinkSigner(keys, "2027a"))
    assert LinkSigner(keys, "2027b").verify(old).action is LinkAction.DONE


@pytest.mark.integration
async def test_an_old_sha1_link_is_refused_with_a_clear_page(production_checkins: Any) -> None:
    """household member — taps a link from a reminder sent before the SHA-256 change — a page saying
    the link is out of date and where to check in instead; nothing recorded."""
    parts, client = production_checkins
    claims = {"token_id": str(uuid4()), "household_id": str(uuid4()), "occurrence_id": str(uuid4()),
              "member_id": str(uuid4()), "action": "done",
              "expires_at": (datetime.now(UTC) + timedelta(hours=30)).isoformat()}
    old_style = "2027a." + URLSafeSerializer(REAL_LINK_KEYS.partition(":")[2], salt="attune.checkin-link.v1").dumps(claims)
    response = await client.get(f"/l/{old_style}")
    assert response.status_code == 400, response.text
    assert "text/html" in response.headers["content-type"]
    assert "older version of Attune" in response.text and "next reminder" in response.text
    assert "Attune app" not in response.text  # no app to send anyone to yet (issue 15)
    assert failures(parts, "outdated") == 1


# ---- development listens on loopback only -----------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "attune.example.org"])
def test_a_development_service_refuses_to_listen_beyond_loopback(host: str) -> None:
    """anyone on the network — reaches a development service (published keys) — it never listens there."""
    for cls in (ServiceSettings, SchedulerSettings, CheckinsSettings, NotifierSettings):
        with pytest.raises(ValidationError, match="loopback only"):
            cls(environment="development", http_host=host)
    assert SchedulerSettings(environment="production", http_host=host, credential_keys=CREDENTIAL_KEYS,
                             dead_letter_key=DEAD_LETTER_KEY, field_keys=FIELD_KEYS).http_host == host


@pytest.mark.unit
@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "localhost"])
def test_development_on_loopback_starts(host: str) -> None:
    assert CheckinsSettings(environment="development", http_host=host).http_host == host


# ---- 413 before parsing and authentication; per-credential rate limits -----------------------------

@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a real uvicorn (real HTTP/1.1: Content-Length and chunked bodies as a client sends them)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await eventually(lambda: server.started, timeout=20, interval=0.05)
            yield client
    finally:
        server.should_exit = True
        await task


async def notifier_http(tmp_path: Path, **limits: Any) -> tuple[Any, CollectorRegistry]:
    """The notifier's HTTP API as production builds it (its database migrated, no broker)."""
    registry = CollectorRegistry()
    settings = NotifierSettings(environment="production", kafka_bootstrap_servers=NOBODY,
                                database_url=f"sqlite+aiosqlite:///{tmp_path}/notifier.db", **REAL["notifier"],
                                **limits)
    app = build_notifier(settings, registry=registry, run_worker=False)
    await migrate(app.notifier.store.engine)
    return app.http_app, registry


async def chunks(total: int, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


@pytest.mark.integration
async def test_an_oversized_body_is_refused_before_parsing_and_authentication(tmp_path: Path) -> None:
    """anyone — posts a huge body (with or without Content-Length, no credential) to the notifier API —
    413 before the body is read whole or the token checked."""
    app, _ = await notifier_http(tmp_path)
    member = uuid4()
    async with serving(app) as client:
        small = await client.post(f"/v1/members/{member}/channels", json={"url": "json://127.0.0.1/x"})
        assert small.status_code == 401  # an ordinary body reaches authentication
        declared = await client.post(f"/v1/members/{member}/channels", content=b"[" * 200_000,
                                     headers={"content-type": "application/json"})
        assert declared.status_code == 413 and "larger than 65536 bytes" in declared.json()["detail"]
        chunked = await client.post(f"/v1/members/{member}/channels", content=chunks(1_000_000),
                                    headers={"content-type": "application/json"})
        assert chunked.status_code == 413, chunked.text
        assert chunked.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in chunked.request.headers


@pytest.mark.integration
async def test_check_ins_cut_a_chunked_body_on_a_link_with_a_page(production_checkins: Any) -> None:
    """anyone — streams an endless form to a one-tap link — 413 page before the link is even verified."""
    parts, _ = production_checkins
    async with serving(parts.http) as client:
        response = await client.post("/l/anything", content=chunks(500_000),
                                     headers={"content-type": "application/x-www-form-urlencoded"})
        assert response.status_code == 413 and "text/html" in response.headers["content-type"]


def limited(registry: CollectorRegistry, service: str, keyed_by: str) -> float:
    return registry.get_sample_value("attune_http_rate_limited_total",
                                     {"service": service, "keyed_by": keyed_by}) or 0


@pytest.mark.integration
async def test_a_credential_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    """anyone holding (or guessing with) one credential — floods the notifier API — 429 with Retry-After
    and when to try again; other credentials are not slowed; the metric never carries the credential."""
    app, registry = await notifier_http(tmp_path, http_rate_per_s=0.25, http_rate_burst=3)
    member = uuid4()
    flood = {"Authorization": "Bearer flooding-credential-0123456789"}
    async with serving(app) as client:
        answers = [await client.get(f"/v1/members/{member}/preferences", headers=flood) for _ in range(4)]
        assert [a.status_code for a in answers] == [401, 401, 401, 429]
        refused = answers[-1]
        assert refused.headers["Retry-After"] == "4"
        assert refused.json() == {"detail": "too many requests from this credential; please try again in 4 seconds"}
        other = await client.get(f"/v1/members/{member}/preferences",
                                 headers={"Authorization": f"Bearer {CredentialIssuer(SIGNING_KEY).household(uuid4())}"})
        assert other.status_code == 404  # authenticated, unknown member: its own bucket is full
        for _ in range(3):
            assert (await client.get(f"/v1/members/{member}/preferences")).status_code == 401
        assert (await client.get(f"/v1/members/{member}/preferences")).status_code == 429  # by address
    assert limited(registry, "notifier", "credential") == 1
    assert limited(registry, "notifier", "address") == 1
    from prometheus_client import generate_latest

    exposition = generate_latest(registry).decode()
    assert "flooding-credential" not in exposition and "127.0.0.1" not in exposition


@pytest.mark.integration
async def test_one_tap_links_are_rate_limited_by_address_with_a_page(tmp_path: Path) -> None:
    """anyone — hammers one-tap link pages (no credential) — a 429 page saying when to try again."""

    class Sink:
        async def send_all(self, records: Any) -> None:
            return None

    settings = CheckinsSettings(environment="production", kafka_bootstrap_servers=NOBODY,
                                database_url=f"sqlite+aiosqlite:///{tmp_path}/c.db", http_rate_per_s=0.2,
                                http_rate_burst=2, **REAL["checkins"])
    parts = build_checkins(settings, sink=Sink(), registry=CollectorRegistry(), run_timer=False)
    try:
        async with serving(parts.http) as client:
            codes = [(await client.get("/l/2027a.not-a-link")).status_code for _ in range(3)]
            assert codes == [400, 400, 429]
            page = await client.get("/l/2027a.not-a-link")
            assert page.status_code == 429 and page.headers["Retry-After"] == "5"
            assert "text/html" in page.headers["content-type"] and "try again in 5 seconds" in page.text
        assert limited(parts.registry, "checkins", "address") == 2
    finally:
        await parts.store.close()

