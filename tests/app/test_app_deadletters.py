"""The web app's dead letters are sealed like the other services': nothing of a message it gave up on is readable
on the dead-letter topic; the operator opens one through the app while the household exists; HouseholdErased
deletes the household's key in the same transaction as its read-model rows, and from then on nobody can."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from attune_app.adapters.migrate import upgrade
from attune_app.adapters.tables import dead_letter_keys, erased_households, households
from attune_app.bootstrap import App, build, build_app
from attune_app.handlers import make_handler
from attune_contracts import Topic, make_envelope
from attune_contracts.credentials import CredentialIssuer, development_signing_key
from attune_contracts.messages import DeadLetter, HouseholdErased, HouseholdKind, HouseholdRegistered
from attune_runtime.consumer import dead_letter_for
from attune_runtime.deadletters import DeadLetterKeyErased
from attune_runtime.testing import KafkaRecord, eventually
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import func, select, text

from .conftest import FakeCheckins, FakeCommands, settings_for

SECRET = "our-first-kiss-in-Porto"


def _poisoned(household: uuid.UUID, secret: str) -> bytes:
    """A scheduler fact the app cannot parse (an unknown role), carrying a name nobody else may read."""
    return json.dumps({
        "event_id": str(uuid.uuid4()), "type": "scheduler.member_upserted", "version": 1,
        "household_id": str(household), "occurred_at": datetime.now(UTC).isoformat(), "producer": "scheduler",
        "payload": {"member_id": str(uuid.uuid4()), "display_name": secret, "role": "not-a-role",
                    "time_zone": "Europe/Lisbon"}}).encode()


def _letter(household: uuid.UUID, offset: int = 3) -> DeadLetter:
    record = KafkaRecord(value=_poisoned(household, SECRET), offset=offset, topic=Topic.SCHEDULER_EVENTS.value,
                         key=str(household).encode())
    return dead_letter_for(record, reason="payload.role: not one of the roles", kind="invalid",
                           consumer="app/attune-app", attempts=1)


async def _count(parts: App, table: Any, **where: Any) -> int:
    async with parts.store.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table).where(
            *[table.c[k] == v for k, v in where.items()])) or 0)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[App]:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/app.db",
                            dead_letter_key=SecretStr(Fernet.generate_key().decode()))
    app = build(settings, commands=FakeCommands(), checkins=FakeCheckins())
    await upgrade(app.store.engine)
    try:
        yield app
    finally:
        await app.store.close()


async def _register(parts: App, household: uuid.UUID) -> None:
    await parts.store.save_household(household, name="Ana & Ben", kind="couple", time_zone="Europe/Lisbon",
                                     now=datetime.now(UTC), confirmed=True)


def _erasure(household: uuid.UUID) -> Any:
    return make_envelope(HouseholdErased(erased_at=datetime.now(UTC)), household_id=household, producer="scheduler")


@pytest.mark.unit
async def test_household_erased_deletes_its_dead_letter_key_with_its_rows_and_no_one_elses(parts: App) -> None:
    ours, theirs = uuid.uuid4(), uuid.uuid4()
    for household in (ours, theirs):
        await _register(parts, household)
    assert parts.vault is not None
    letter = _letter(ours)
    sealed, other = await parts.vault.seal(letter, ours), await parts.vault.seal(_letter(theirs), theirs)
    assert SECRET not in sealed.model_dump_json() and sealed.sealed is not None
    assert sealed.sealed.service == "app" and sealed.sealed.scope == f"household:{ours}"
    assert (await parts.vault.open(sealed)).value == letter.value  # the operator's way in, before the erasure

    await make_handler(parts.store)(_erasure(ours))

    with pytest.raises(DeadLetterKeyErased, match="its household was erased"):
        await parts.vault.open(sealed)
    assert await _count(parts, households, household_id=ours) == 0
    assert await _count(parts, dead_letter_keys, scope=f"household:{ours}") == 0
    assert await _count(parts, erased_households, household_id=ours) == 1
    # The other household keeps its rows and its key: its letter still opens.
    assert await _count(parts, households, household_id=theirs) == 1
    assert SECRET.encode() in ((await parts.vault.open(other)).value or b"")

    # A late letter of the erased household keeps none of its bytes and makes no key that would outlive it.
    late = await parts.vault.seal(_letter(ours, offset=9), ours)
    assert late.sealed is None and late.value_b64 == "" and SECRET not in late.model_dump_json()
    assert await _count(parts, dead_letter_keys, scope=f"household:{ours}") == 0


@pytest.mark.unit
async def test_the_key_and_the_rows_go_in_one_transaction(parts: App) -> None:
    """If the key cannot be deleted, the household's rows are not deleted either (the erasure is retried whole)."""
    household = uuid.uuid4()
    await _register(parts, household)
    async with parts.store.engine.begin() as conn:
        await conn.execute(text("DROP TABLE app_dead_letter_keys"))
    with pytest.raises(Exception, match="app_dead_letter_keys"):
        await make_handler(parts.store)(_erasure(household))
    assert await _count(parts, households, household_id=household) == 1
    assert await _count(parts, erased_households, household_id=household) == 0


# ---- the running app (its ASGI app with the open route), the real broker and PostgreSQL --------------------


@pytest.fixture
async def running(kafka_bootstrap: str, pg_url: str, unique: str) -> AsyncIterator[tuple[App, str]]:
    """The app as `python -m attune_app` serves it (development credentials, a real dead-letter key)."""
    from attune_runtime.tansu import free_port
    from prometheus_client import CollectorRegistry
    from support.inprocess import serving

    port = free_port()
    settings = settings_for(pg_url, kafka_bootstrap_servers=kafka_bootstrap, kafka_session_timeout_ms=6000,
                            retry_base_delay_s=0.05, retry_max_delay_s=0.2, http_port=port,
                            group_id=f"attune-app-{unique}", dead_letter_key=SecretStr(Fernet.generate_key().decode()))
    settings = settings.model_copy(update={"kafka_create_topics": True})
    asgi = build_app(settings, registry=CollectorRegistry())
    async with serving(asgi, port) as base:
        yield asgi.app_parts, base  # type: ignore[attr-defined]


async def _send(bootstrap: str, value: bytes, household: uuid.UUID) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(Topic.SCHEDULER_EVENTS.value, value, key=str(household).encode())
    finally:
        await producer.stop()


@pytest.mark.integration
async def test_the_apps_dead_letter_holds_no_plaintext_opens_for_the_operator_and_not_after_erasure(
        kafka_bootstrap: str, running: tuple[App, str]) -> None:
    from attune_cli.config import CliConfig
    from attune_cli.dlq import read_dead_letters, replay

    parts, base = running
    household = uuid.uuid4()
    secret = f"{SECRET}-{uuid.uuid4().hex[:8]}"
    await _send(kafka_bootstrap, make_envelope(
        HouseholdRegistered(name="Ana & Ben", time_zone="Europe/Lisbon", kind=HouseholdKind.COUPLE),
        household_id=household, producer="scheduler").to_bytes(), household)
    await eventually(lambda: _count(parts, households, household_id=household), timeout=30, interval=0.2)

    value = _poisoned(household, secret)
    await _send(kafka_bootstrap, value, household)
    sha256 = hashlib.sha256(value).hexdigest()

    async def ours() -> tuple[str, DeadLetter, bytes] | None:
        # The raw record, matched by its hash before any decoding (other tests put hostile records there).
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(Topic.DEAD_LETTER.value, bootstrap_servers=kafka_bootstrap,
                                    auto_offset_reset="earliest", group_id=f"evidence-{uuid.uuid4().hex[:8]}")
        await consumer.start()
        try:
            for _ in range(10):
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    for record in records:
                        if sha256.encode() in record.value:
                            letter = DeadLetter.model_validate_json(record.value)
                            if letter.sealed is not None and letter.sealed.service == "app":
                                return f"{record.partition}:{record.offset}", letter, record.value
        finally:
            await consumer.stop()
        return None

    ref, letter, raw = await eventually(ours, timeout=40, interval=0.2)
    assert secret.encode() not in raw and b"not-a-role" not in raw  # nothing of it in the clear on the topic
    assert letter.error_kind == "invalid" and letter.sealed is not None
    assert letter.sealed.scope == f"household:{household}"

    issuer = CredentialIssuer(development_signing_key())
    async with httpx.AsyncClient(base_url=base) as client:
        body = letter.model_dump_json()
        assert (await client.post("/v1/dead-letters/open", content=body)).status_code == 401
        refused = await client.post("/v1/dead-letters/open", content=body,
                                    headers={"Authorization": f"Bearer {issuer.household(household)}"})
        assert refused.status_code == 403 and "operator credential" in refused.json()["detail"]
        operator = {"Authorization": f"Bearer {issuer.operator()}"}
        opened = await client.post("/v1/dead-letters/open", content=body, headers=operator)
        assert opened.status_code == 200, opened.text
        assert base64.b64decode(opened.json()["value_b64"]) == value

        # `attune dlq replay` finds the app by ATTUNE_APP_URL and opens the letter through it.
        config = CliConfig(kafka=kafka_bootstrap, app_url=base, operator_token=issuer.operator())
        assert [r for r, d in await read_dead_letters(kafka_bootstrap) if r == ref]
        before = await replay(kafka_bootstrap, [ref], config)
        assert before.replayed == [ref] and before.refused == {}, before.refused

        await _send(kafka_bootstrap, _erasure(household).to_bytes(), household)

        async def erased() -> bool:
            return (await _count(parts, households, household_id=household) == 0
                    and await _count(parts, dead_letter_keys, scope=f"household:{household}") == 0)

        await eventually(erased, timeout=30, interval=0.2)
        gone = await client.post("/v1/dead-letters/open", content=body, headers=operator)
        assert gone.status_code == 410 and "its household was erased" in gone.json()["detail"]
        after = await replay(kafka_bootstrap, [ref], config)
        assert after.replayed == [] and "410" in after.refused[ref], after.refused


@pytest.mark.unit
def test_the_app_started_without_its_dead_letter_key_exits_naming_it(tmp_path: Path) -> None:
    """operator — starts the app in production with every other secret but no dead-letter key — it exits, naming
    it (and does not start with the published development one)."""
    import os
    import subprocess
    import sys

    from attune_contracts.credentials import generate_key_pair

    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")}
    env |= {"ATTUNE_APP_ENVIRONMENT": "production", "ATTUNE_APP_SIGNING_KEY": generate_key_pair("app1")[0],
            "ATTUNE_APP_PUBLIC_URL": "https://attune.example", "ATTUNE_APP_CREDENTIAL_KEYS": generate_key_pair("ops1")[1]}
    run = subprocess.run([sys.executable, "-m", "attune_app"], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode != 0
    assert "ATTUNE_APP_DEAD_LETTER_KEY is missing" in run.stderr and "Fernet.generate_key()" in run.stderr
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
