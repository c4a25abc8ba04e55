"""Identities with scopes, attacked over HTTP: the real check-ins app (built as the service builds it, with
`ENVIRONMENT=test` and a real Ed25519 key) and the real notifier API over its real store.

Every attempt is refused with the right status (401: no, forged, expired or revoked credential; 403: a good
credential for something else) and a message that says which credential would work.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import jwt
import pytest
from attune_checkins.adapters.migrate import upgrade
from attune_checkins.bootstrap import build
from attune_checkins.config import Settings
from attune_contracts.credentials import (
    CredentialIssuer,
    development_issuer,
    generate_key_pair,
    verifier_from_setting,
)
from attune_contracts.messages import HouseholdCredentialsRevoked, NotificationRequested
from attune_notifier.api import build_http_app as notifier_http
from attune_runtime.testing import FakeClock
from checkins.conftest import FERNET_KEY, FakeSink, Harness, publish_now
from notifier.harness import Harness as NotifierHarness
from notifier.harness import make_harness as make_notifier_harness
from pydantic import SecretStr

pytestmark = [pytest.mark.integration]

SIGNING, PUBLIC = generate_key_pair("k1")
OTHER_SIGNING, _ = generate_key_pair("k1")  # same kid, another key: what a forger would make
STRANGER_SIGNING, _ = generate_key_pair("k9")  # a key the services never heard of
FIELD_KEYS = SecretStr(f"f1:{base64.urlsafe_b64encode(bytes(range(32))).decode()}")
NOW = datetime(2027, 3, 2, 1, 45, tzinfo=UTC)
ISSUED = NOW - timedelta(hours=1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- check-ins ---------------------------------------------------------------------------------------


@dataclass
class Checkins:
    h: Harness
    client: httpx.AsyncClient
    issuer: CredentialIssuer
    occurrence: UUID

    def household(self, household: UUID | None = None, **kw: Any) -> dict[str, str]:
        return bearer(self.issuer.household(household or self.h.household, now=kw.pop("now", ISSUED), **kw))

    def member(self, member: UUID, household: UUID | None = None, **kw: Any) -> dict[str, str]:
        return bearer(self.issuer.member(household or self.h.household, member, now=kw.pop("now", ISSUED), **kw))

    def operator(self) -> dict[str, str]:
        return bearer(self.issuer.operator(now=ISSUED))

    @property
    def base(self) -> str:
        return f"/v1/households/{self.h.household}"


@pytest.fixture
async def checkins(tmp_path: Path) -> AsyncIterator[Checkins]:
    settings = Settings(
        environment="test", database_url=f"sqlite+aiosqlite:///{tmp_path}/scopes.db",
        notes_key=SecretStr(FERNET_KEY.decode()), link_keys=SecretStr("k1:a-real-link-key-0123456789"),
        credential_keys=PUBLIC, dead_letter_key=SecretStr(FERNET_KEY.decode()), field_keys=FIELD_KEYS,
    )
    clock, sink = FakeClock(NOW), FakeSink()
    parts = build(settings, clock=clock, sink=sink, run_timer=False)
    parts.service.on_commit = lambda: publish_now(parts.relay)
    await upgrade(parts.store.engine)
    h = Harness(parts.service, parts.store, sink, clock, parts.registry, parts.relay)
    await h.setup_household()
    due = h.due(uuid4(), NOW - timedelta(minutes=15))
    await h.send(due)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=parts.http), base_url="http://checkins") as client:
        yield Checkins(h, client, CredentialIssuer(SIGNING), due.occurrence_id)
    await parts.store.close()


def _checkin(c: Checkins, member: UUID, note: str | None = None) -> dict[str, Any]:
    return {"occurrence_id": str(c.occurrence), "member_id": str(member), "status": "done", "note": note}


async def test_household_a_gets_403_on_every_endpoint_of_household_b(checkins: Checkins) -> None:
    c = checkins
    other = c.household(uuid4())
    other_member = c.member(uuid4(), household=uuid4())
    for headers in (other, other_member):
        for method, path, body in [
            ("GET", "summary", None), ("GET", "checkins", None), ("GET", "export", None),
            ("POST", "checkins", _checkin(c, c.h.ana)),
            ("POST", "moments", {"member_id": str(c.h.ana), "kind": "positive"}),
            ("POST", "dreams", {"member_id": str(c.h.ana), "dream": "A garden"}),
            ("POST", f"dreams/{uuid4()}/support", {"member_id": str(c.h.ana)}),
            ("POST", f"dreams/{uuid4()}/reached", {"member_id": str(c.h.ana)}),
            ("POST", "aftercare/consent", {"member_id": str(c.h.ana), "given": True}),
            ("POST", "aftercare", {"member_id": str(c.h.ana)}),
        ]:
            response = await c.client.request(method, f"{c.base}/{path}", json=body, headers=headers)
            assert response.status_code == 403, (method, path, response.text)
            assert f"needs a household or member credential of household {c.h.household}" in response.json()["error"]
    assert (await c.client.get(f"{c.base}/summary", headers=c.household())).status_code == 200


async def test_a_member_credential_acts_as_its_member_only(checkins: Checkins) -> None:
    c = checkins
    as_ana = c.member(c.h.ana)
    as_ben = await c.client.post(f"{c.base}/checkins", json=_checkin(c, c.h.ben), headers=as_ana)
    assert as_ben.status_code == 403 and "acts as its own member only" in as_ben.json()["error"]
    moment = await c.client.post(f"{c.base}/moments", json={"member_id": str(c.h.ben), "kind": "negative"},
                                 headers=as_ana)
    assert moment.status_code == 403 and f"credential of member {c.h.ben}" in moment.json()["error"]
    assert (await c.h.count("checkins"), await c.h.count("moments")) == (0, 0)
    own = await c.client.post(f"{c.base}/checkins", json=_checkin(c, c.h.ana), headers=as_ana)
    assert own.status_code == 201


async def test_private_notes_are_returned_to_their_author_only(checkins: Checkins) -> None:
    c = checkins
    secret_note, secret_moment = "I felt far away tonight", "the way she laughed at dinner"
    assert (await c.client.post(f"{c.base}/checkins", json=_checkin(c, c.h.ana, secret_note),
                                headers=c.member(c.h.ana))).status_code == 201
    assert (await c.client.post(f"{c.base}/moments", headers=c.member(c.h.ana), json={
        "member_id": str(c.h.ana), "kind": "positive", "note": secret_moment})).status_code == 201

    for reader in (c.member(c.h.ben), c.household()):
        for path in ("checkins", "export"):
            response = await c.client.get(f"{c.base}/{path}", headers=reader)
            assert response.status_code == 200
            assert secret_note not in response.text and secret_moment not in response.text
        exported = (await c.client.get(f"{c.base}/export", headers=reader)).json()
        assert exported["checkins"][0]["note"] is None and exported["checkins"][0]["note_withheld"] is True
        assert exported["moments"][0]["note"] is None and exported["moments"][0]["note_withheld"] is True

    mine = (await c.client.get(f"{c.base}/export", headers=c.member(c.h.ana))).json()
    assert mine["checkins"][0]["note"] == secret_note and mine["moments"][0]["note"] == secret_moment
    history = (await c.client.get(f"{c.base}/checkins", headers=c.member(c.h.ana))).json()
    assert history["items"][0]["note"] == secret_note


async def test_an_operator_credential_reaches_no_household_data(checkins: Checkins) -> None:
    c = checkins
    for path in ("summary", "checkins", "export"):
        response = await c.client.get(f"{c.base}/{path}", headers=c.operator())
        assert response.status_code == 403
        assert "operator credential reaches no household's data" in response.json()["error"]


def _tampered(token: str, **claims: Any) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(claims)
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


def _forgeries(household: UUID, member: UUID) -> dict[str, tuple[str, str]]:
    """name -> (token, words of the refusal)."""
    good = CredentialIssuer(SIGNING).household(uuid4(), now=ISSUED)
    unsigned = jwt.encode({"iss": "attune", "aud": "attune", "scope": "household", "household_id": str(household),
                           "iat": ISSUED.timestamp(), "jti": str(uuid4())}, None, algorithm="none")
    hmac_confusion = jwt.encode({"iss": "attune", "aud": "attune", "scope": "household",
                                 "household_id": str(household), "iat": ISSUED.timestamp(), "jti": str(uuid4())},
                                PUBLIC.split(":", 1)[1], algorithm="HS256", headers={"kid": "k1"})
    return {
        "another key, same kid": (CredentialIssuer(OTHER_SIGNING).household(household, now=ISSUED),
                                  "signature does not verify"),
        "a key nobody configured": (CredentialIssuer(STRANGER_SIGNING).household(household, now=ISSUED),
                                    "key this service does not accept"),
        "the public development key": (development_issuer().household(household, now=ISSUED),
                                       "key this service does not accept"),
        "another household's credential, household id changed": (_tampered(good, household_id=str(household)),
                                                                  "signature does not verify"),
        "a household credential turned into a member's": (
            _tampered(CredentialIssuer(SIGNING).household(household, now=ISSUED), scope="member",
                      member_id=str(member)), "signature does not verify"),
        "alg none": (unsigned, "not an Attune credential"),
        "HS256 with the public key as secret": (hmac_confusion, "not an Attune credential"),
        "garbage": ("hh1_" + "A" * 43, "not an Attune credential"),
    }


async def test_forged_and_other_key_credentials_are_401(checkins: Checkins) -> None:
    c = checkins
    for name, (token, words) in _forgeries(c.h.household, c.h.ana).items():
        response = await c.client.get(f"{c.base}/export", headers=bearer(token))
        assert response.status_code == 401, (name, response.text)
        assert words in response.json()["error"], (name, response.json())
        assert response.headers["www-authenticate"] == "Bearer"


async def test_expired_and_future_credentials_are_401(checkins: Checkins) -> None:
    c = checkins
    expired = c.household(now=NOW - timedelta(days=2), ttl=timedelta(days=1))
    response = await c.client.get(f"{c.base}/summary", headers=expired)
    assert response.status_code == 401 and "expired" in response.json()["error"]
    future = c.household(now=NOW + timedelta(hours=1))
    response = await c.client.get(f"{c.base}/summary", headers=future)
    assert response.status_code == 401 and "issued in the future" in response.json()["error"]


async def test_revoking_a_household_refuses_its_old_credentials_and_no_one_elses(checkins: Checkins) -> None:
    c = checkins
    old_household, old_member = c.household(), c.member(c.h.ana)
    neighbour = uuid4()
    neighbours = c.household(neighbour)
    await c.h.send(HouseholdCredentialsRevoked(not_before=NOW - timedelta(minutes=1)))
    for headers in (old_household, old_member):
        response = await c.client.get(f"{c.base}/summary", headers=headers)
        assert response.status_code == 401 and "revoked" in response.json()["error"]
        assert "ask for a new one" in response.json()["error"]
    fresh = c.household(now=NOW)
    assert (await c.client.get(f"{c.base}/summary", headers=fresh)).status_code == 200
    # Another household's credentials are untouched (its summary is 404: nothing known, but let in).
    assert (await c.client.get(f"/v1/households/{neighbour}/summary", headers=neighbours)).status_code == 404
    # A replayed, older revocation does not move the cut-off back.
    await c.h.send(HouseholdCredentialsRevoked(not_before=NOW - timedelta(days=30)))
    assert (await c.client.get(f"{c.base}/summary", headers=old_household)).status_code == 401


async def test_a_service_outside_development_refuses_the_development_key() -> None:
    from attune_contracts.credentials import development_public_keys

    with pytest.raises(ValueError, match="development key"):
        Settings(environment="production", notes_key=SecretStr(FERNET_KEY.decode()),
                 dead_letter_key=SecretStr(FERNET_KEY.decode()), link_keys=SecretStr("k1:a-real-link-key-0123456789"),
                 credential_keys=f"{PUBLIC},{development_public_keys()}", field_keys=FIELD_KEYS)
    with pytest.raises(ValueError, match="CREDENTIAL_KEYS must be set"):
        Settings(environment="production", notes_key=SecretStr(FERNET_KEY.decode()),
                 dead_letter_key=SecretStr(FERNET_KEY.decode()), link_keys=SecretStr("k1:a-real-link-key-0123456789"),
                 field_keys=FIELD_KEYS)


# ---- notifier ----------------------------------------------------------------------------------------


HOME, AWAY = UUID("11111111-1111-4111-8111-111111111111"), uuid4()
ANA, BEN, EVE = uuid4(), uuid4(), uuid4()  # Ana and Ben at HOME; Eve in another household
SECRET_BODY = "Your partner left you a note: meet me at the lake"


@dataclass
class Notifier:
    h: NotifierHarness
    client: httpx.AsyncClient
    issuer: CredentialIssuer


@pytest.fixture
async def notifier(tmp_path: Path) -> AsyncIterator[Notifier]:
    h = await make_notifier_harness(f"sqlite+aiosqlite:///{tmp_path}/notifier.db", FakeClock(NOW))
    await h.member(ANA, "Ana", household=HOME)
    await h.member(BEN, "Ben", household=HOME)
    await h.member(EVE, "Eve", household=AWAY)
    await h.event(NotificationRequested(member_id=ANA, purpose="partner.note", title="A note for you",
                                        body=SECRET_BODY), household=HOME)
    app = notifier_http(h.store, h.metrics, verifier=verifier_from_setting(PUBLIC, development=False, setting="k"),
                        clock=h.clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier") as client:
        yield Notifier(h, client, CredentialIssuer(SIGNING))
    await h.close()


MEMBER_ROUTES = [("GET", "preferences", None), ("PUT", "preferences", {"discreet": False}),
                 ("GET", "channels", None), ("POST", "channels", {"url": "json://attacker.example/hook"}),
                 ("GET", "export", None), ("DELETE", f"channels/{uuid4()}", None)]


async def test_another_households_credential_cannot_touch_a_member(notifier: Notifier) -> None:
    n = notifier
    for headers in (bearer(n.issuer.household(AWAY, now=ISSUED)), bearer(n.issuer.member(AWAY, EVE, now=ISSUED))):
        for method, path, body in MEMBER_ROUTES:
            response = await n.client.request(method, f"/v1/members/{ANA}/{path}", json=body, headers=headers)
            assert response.status_code == 403, (method, path, response.text)
            assert "credential" in response.json()["detail"]
    # The attack of the issue: a channel added to someone else's member would receive their one-tap links.
    assert await n.h.store.list_channels(ANA) == []


async def test_a_member_reaches_its_own_settings_and_its_household_reaches_all_of_its_members(
        notifier: Notifier) -> None:
    n = notifier
    as_ana = bearer(n.issuer.member(HOME, ANA, now=ISSUED))
    for method, path, body in MEMBER_ROUTES:
        response = await n.client.request(method, f"/v1/members/{BEN}/{path}", json=body, headers=as_ana)
        assert response.status_code == 403, (method, path)
        assert f"the credential of member {BEN} or of its household" in response.json()["detail"]
    assert (await n.client.get(f"/v1/members/{ANA}/preferences", headers=as_ana)).status_code == 200
    household = bearer(n.issuer.household(HOME, now=ISSUED))
    for member in (ANA, BEN):
        assert (await n.client.get(f"/v1/members/{member}/export", headers=household)).status_code == 200


async def test_an_operator_inspects_deliveries_without_message_text_and_nothing_else(notifier: Notifier) -> None:
    n = notifier
    operator = bearer(n.issuer.operator(now=ISSUED))
    response = await n.client.get("/v1/deliveries", headers=operator)
    assert response.status_code == 200
    [delivery] = response.json()["deliveries"]
    assert delivery["member_id"] == str(ANA) and delivery["purpose"] == "partner.note"
    for personal in (SECRET_BODY, "A note for you", "Ana", "params", "last_error"):
        assert personal not in response.text
    for method, path, body in MEMBER_ROUTES:
        refused = await n.client.request(method, f"/v1/members/{ANA}/{path}", json=body, headers=operator)
        assert refused.status_code == 403 and "operator credential reaches no member" in refused.json()["detail"]
    for not_operator in (bearer(n.issuer.household(HOME, now=ISSUED)), bearer(n.issuer.member(HOME, ANA, now=ISSUED))):
        refused = await n.client.get("/v1/deliveries", headers=not_operator)
        assert refused.status_code == 403 and "needs an operator credential" in refused.json()["detail"]


async def test_notifier_refuses_forged_and_revoked_credentials(notifier: Notifier) -> None:
    n = notifier
    for name, (token, words) in _forgeries(HOME, ANA).items():
        response = await n.client.get(f"/v1/members/{ANA}/export", headers=bearer(token))
        assert response.status_code == 401 and words in response.json()["detail"], (name, response.text)
    old = bearer(n.issuer.member(HOME, ANA, now=ISSUED))
    await n.h.event(HouseholdCredentialsRevoked(not_before=NOW - timedelta(minutes=1)), household=HOME)
    response = await n.client.get(f"/v1/members/{ANA}/export", headers=old)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]
    assert (await n.client.get(f"/v1/members/{ANA}/export",
                               headers=bearer(n.issuer.member(HOME, ANA, now=NOW)))).status_code == 200
    eve = bearer(n.issuer.member(AWAY, EVE, now=ISSUED))  # another household: not revoked
    assert (await n.client.get(f"/v1/members/{EVE}/export", headers=eve)).status_code == 200


def test_both_consumers_take_the_revocation_from_the_scheduler_topic() -> None:
    from attune_checkins.usecases import HANDLED_TYPES
    from attune_contracts import Topic, spec_of
    from attune_notifier.handlers import ACCEPTED_TYPES

    spec = spec_of(HouseholdCredentialsRevoked)
    assert spec.topic is Topic.SCHEDULER_EVENTS
    assert spec.type in HANDLED_TYPES and spec.type in ACCEPTED_TYPES
