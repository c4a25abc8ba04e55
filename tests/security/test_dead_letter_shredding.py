"""Crypto-shredding of dead letters (attune_runtime.deadletters): someone with the dead-letter topic reads no
message bytes; the service opens them while the household exists; its erasure destroys the key, and with it
every dead letter of it, wherever a copy went."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from attune_contracts import Topic
from attune_contracts.messages import DeadLetter, HouseholdErased
from attune_runtime.consumer import dead_letter_for
from attune_runtime.deadletters import DeadLetterKeyErased, DeadLetterVault, dead_letter_keys_table
from attune_runtime.settings import DEV_DEAD_LETTER_KEY
from attune_runtime.testing import KafkaRecord, eventually
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError
from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from support.inprocess import read_topic

from security.test_kafkatrust import checkins, forged, produce  # noqa: F401 - the in-process check-ins fixture

SECRET_NOTE = "our-anniversary-in-Lisbon"


def _record(household: uuid.UUID | None, value: bytes, offset: int = 7) -> KafkaRecord:
    key = str(household).encode() if household is not None else None
    return KafkaRecord(value=value, key=key, offset=offset, topic=Topic.CHECKINS_COMMANDS.value,
                       headers=(("correlation_id", SECRET_NOTE.encode()),))


def _letter(household: uuid.UUID | None, *, kind: str = "invalid", reason: str = "payload.kind: bad") -> DeadLetter:
    value = json.dumps({"type": "checkins.log_moment", "household_id": str(household),
                        "payload": {"kind": "bogus", "note": SECRET_NOTE}}).encode()
    return dead_letter_for(_record(household, value), reason=reason, kind=kind, consumer="checkins/g", attempts=1)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/keys.db")
    yield engine
    await engine.dispose()


async def _vault(engine: AsyncEngine, *keys: str, service: str = "checkins") -> DeadLetterVault:
    metadata = MetaData()
    table = dead_letter_keys_table(metadata, service)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return DeadLetterVault(engine, table, keys or [Fernet.generate_key().decode()], service=service)


async def _erase(vault: DeadLetterVault, household: uuid.UUID) -> None:
    from attune_runtime.deadletters import erase_dead_letter_key

    async with vault.engine.begin() as conn:
        assert await erase_dead_letter_key(conn, vault.table, household) == 1


@pytest.mark.unit
async def test_a_sealed_dead_letter_holds_no_plaintext_and_opens_to_the_original(engine: AsyncEngine) -> None:
    vault = await _vault(engine)
    household = uuid.uuid4()
    letter = _letter(household)
    sealed = await vault.seal(letter, household)
    on_the_topic = sealed.model_dump_json()
    assert SECRET_NOTE not in on_the_topic and "bogus" not in on_the_topic
    assert sealed.value_b64 == "" and sealed.headers == {} and sealed.sealed is not None
    assert sealed.sealed.scope == f"household:{household}" and sealed.sealed.service == "checkins"
    assert sealed.value_sha256 == letter.value_sha256 and sealed.key == str(household).encode()
    # What the operator reads back from the topic opens to the exact bytes, headers and reason.
    opened = await vault.open(DeadLetter.model_validate_json(on_the_topic))
    assert opened.value == letter.value and opened.headers == letter.headers and opened.reason == letter.reason


@pytest.mark.unit
async def test_erasing_a_household_makes_its_dead_letters_unreadable_and_no_one_elses(engine: AsyncEngine) -> None:
    vault = await _vault(engine)
    erased, other = uuid.uuid4(), uuid.uuid4()
    gone = [await vault.seal(_letter(erased), erased) for _ in range(2)]
    kept = await vault.seal(_letter(other), other)
    await _erase(vault, erased)
    for letter in gone:
        with pytest.raises(DeadLetterKeyErased, match="its household was erased, and its key with it"):
            await vault.open(letter)
    assert (await vault.open(kept)).value == _letter(other).value
    # A later dead letter of the erased household gets a new key, which opens none of the old ones.
    await vault.seal(_letter(erased), erased)
    with pytest.raises(DeadLetterKeyErased, match="does not open with its key"):
        await vault.open(gone[0])


@pytest.mark.unit
async def test_a_sealed_letter_of_a_record_near_the_size_limit_still_fits_under_the_producers_limit(
        engine: AsyncEngine) -> None:
    from attune_runtime.consumer import KEEP_HEADER_BYTES, KEEP_VALUE_BYTES

    vault = await _vault(engine)
    household = uuid.uuid4()
    huge = KafkaRecord(value=b"n" * (2 * KEEP_VALUE_BYTES), key=str(household).encode(), offset=1,
                       topic=Topic.CHECKINS_COMMANDS.value,
                       headers=tuple((f"h{i}", b"v" * (KEEP_HEADER_BYTES // 8 - 10)) for i in range(8)))
    letter = dead_letter_for(huge, reason="too large", kind="invalid", consumer="checkins/g", attempts=1)
    sealed = await vault.seal(letter, household)
    assert len(sealed.model_dump_json().encode()) < 1024 * 1024  # aiokafka's default max_request_size
    opened = await vault.open(sealed)
    assert opened.value == b"n" * KEEP_VALUE_BYTES and opened.headers == letter.headers


@pytest.mark.unit
async def test_a_late_letter_of_an_erased_household_keeps_no_bytes_and_makes_no_key(engine: AsyncEngine) -> None:
    from sqlalchemy import Column, Table, Uuid, func

    metadata = MetaData()
    tombstones = Table("erased_households", metadata, Column("household_id", Uuid, primary_key=True))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    plain = await _vault(engine)
    vault = DeadLetterVault(engine, plain.table, [Fernet.generate_key().decode()], service="checkins",
                            erased=tombstones)
    household = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(tombstones.insert().values(household_id=household))
    late = await vault.seal(_letter(household), household)
    assert late.sealed is None and late.value_b64 == "" and late.headers == {} and late.truncated
    assert SECRET_NOTE not in late.model_dump_json() and "household was erased" in late.reason
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(vault.table))).scalar_one() == 0


@pytest.mark.unit
async def test_a_letter_with_no_household_uses_the_service_key_and_a_moved_seal_does_not_open(
        engine: AsyncEngine) -> None:
    vault = await _vault(engine)
    letter = await vault.seal(_letter(None), None)
    assert letter.sealed is not None and letter.sealed.scope == "service"
    assert (await vault.open(letter)).value == _letter(None).value
    household = uuid.uuid4()
    other = await vault.seal(_letter(household, reason="another"), household)
    with pytest.raises(DeadLetterKeyErased):  # another letter's ciphertext under this letter's key and place
        await vault.open(letter.model_copy(update={"sealed": other.sealed}))
    with pytest.raises(DeadLetterKeyErased, match="sealed by checkins, not notifier"):
        await (await _vault(engine, service="notifier")).open(letter)


@pytest.mark.unit
async def test_a_handler_bugs_text_is_sealed_and_only_its_class_stays_readable(engine: AsyncEngine) -> None:
    vault = await _vault(engine)
    household = uuid.uuid4()
    reason = f"handler failed 5 times; last error: ValueError: no member named {SECRET_NOTE}"
    sealed = await vault.seal(_letter(household, kind="handler_failed", reason=reason), household)
    assert sealed.reason == "handler failed 5 times; last error: ValueError (the error text is sealed)"
    assert (await vault.open(sealed)).reason == reason


@pytest.mark.unit
async def test_the_dead_letter_key_rotates_like_the_other_keyrings(engine: AsyncEngine) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    household = uuid.uuid4()
    letter = await (await _vault(engine, old)).seal(_letter(household), household)
    rotated = await _vault(engine, new, old)  # the new key first, the old one kept for reading
    assert (await rotated.open(letter)).value == _letter(household).value
    assert await rotated.rewrap() == 1 and await rotated.rewrap() == 0
    assert (await (await _vault(engine, new)).open(letter)).value == _letter(household).value  # old key retired
    with pytest.raises(DeadLetterKeyErased, match="no longer in DEAD_LETTER_KEY"):
        await (await _vault(engine, old)).open(letter)


@pytest.mark.unit
@pytest.mark.parametrize("service", ["scheduler", "checkins", "notifier", "app"])
def test_a_service_outside_development_needs_its_own_dead_letter_key(service: str) -> None:
    """operator — starts a service without ATTUNE_<SVC>_DEAD_LETTER_KEY, or with the published one — refused."""
    from attune_app.config import Settings as AppSettings
    from attune_checkins.config import Settings as CheckinsSettings
    from attune_notifier.config import NotifierSettings
    from attune_scheduler.config import SchedulerSettings

    cls: Any = {"scheduler": SchedulerSettings, "checkins": CheckinsSettings, "notifier": NotifierSettings,
                "app": AppSettings}[service]
    variable = f"ATTUNE_{service.upper()}_DEAD_LETTER_KEY"
    from attune_contracts.credentials import generate_key_pair

    others: dict[str, Any] = {"credential_keys": generate_key_pair("2027a")[1],
                              "field_keys": SecretStr("k1:" + base64.urlsafe_b64encode(os.urandom(32)).decode())}
    if service == "checkins":
        others |= {"notes_key": SecretStr(Fernet.generate_key().decode()), "link_current_kid": "k1",
                   "link_keys": SecretStr("k1:a-real-link-key-0123456789")}
    if service == "notifier":
        from attune_notifier.webpush import generate_private_key_text

        others |= {"channel_key": SecretStr(Fernet.generate_key().decode()), "link_kid": "k1",
                   "link_keys": SecretStr("k1:a-real-link-key-0123456789"),
                   "vapid_private_key": SecretStr(generate_private_key_text())}
    if service == "app":
        others |= {"signing_key": SecretStr(generate_key_pair("app1")[0]), "public_url": "https://attune.example"}
    for environment in ("production", "test"):
        with pytest.raises(ValidationError, match=f"{variable} is missing"):
            cls(environment=environment, **others)
        with pytest.raises(ValidationError, match=f"{variable} is unset or holds a development key"):
            cls(environment=environment, **others, dead_letter_key=SecretStr(f"{Fernet.generate_key().decode()},"
                                                                             f"{DEV_DEAD_LETTER_KEY}"))
        with pytest.raises(ValidationError, match=f"{variable} must be Fernet keys"):
            cls(environment=environment, **others, dead_letter_key=SecretStr("not-a-fernet-key-but-long-enough"))
    assert cls(environment="development").dead_letter_keys() == [DEV_DEAD_LETTER_KEY]
    real = Fernet.generate_key().decode()
    assert cls(environment="production", **others, dead_letter_key=SecretStr(real)).dead_letter_keys() == [real]


# ---- against the running check-ins service and a real broker ----------------------------------------------


async def test_the_topic_holds_no_plaintext_the_service_opens_it_and_erasure_shreds_it(
        kafka_bootstrap: str, checkins: str) -> None:  # noqa: F811 - the fixture imported above
    household = uuid.uuid4()
    note = f"{SECRET_NOTE}-{uuid.uuid4().hex[:8]}"
    value = json.dumps({"event_id": str(uuid.uuid4()), "type": "checkins.log_moment", "version": 1,
                        "household_id": str(household), "payload": {"kind": "bogus", "note": note}}).encode()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(Topic.CHECKINS_COMMANDS.value, value, key=str(household).encode())
    finally:
        await producer.stop()
    sha256 = hashlib.sha256(value).hexdigest()
    raw: list[bytes] = []

    def keep(record_value: bytes) -> DeadLetter | None:
        if sha256.encode() not in record_value:  # other tests' hostile records share this topic
            return None
        raw.append(record_value)
        return DeadLetter.model_validate_json(record_value)

    [letter] = await read_topic(kafka_bootstrap, Topic.DEAD_LETTER, until=bool, keep=keep, timeout=40)
    assert note.encode() not in raw[0] and b"bogus" not in raw[0]
    assert letter.error_kind == "invalid" and letter.sealed is not None
    assert letter.sealed.scope == f"household:{household}"

    # The service's own key store opens it while the household exists (what replay goes through).
    engine = create_async_engine(checkins.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        from attune_checkins.adapters.tables import dead_letter_keys

        vault = DeadLetterVault(engine, dead_letter_keys, [DEV_DEAD_LETTER_KEY], service="checkins")
        assert (await vault.open(letter)).value == value

        await produce(kafka_bootstrap, forged(HouseholdErased(erased_at=datetime.now(UTC)), household))

        async def key_gone() -> bool:
            async with engine.connect() as conn:
                return (await conn.execute(select(dead_letter_keys.c.scope).where(
                    dead_letter_keys.c.scope == f"household:{household}"))).first() is None

        await eventually(key_gone, timeout=30, interval=0.2)
        with pytest.raises(DeadLetterKeyErased, match="its household was erased"):
            await vault.open(letter)
    finally:
        await engine.dispose()


# ---- replay: the operator opens a sealed letter through its service, until the household's erasure --------


@pytest.fixture
async def checkins_at(kafka_bootstrap: str, pg_url: str) -> AsyncIterator[tuple[str, str]]:
    """The check-ins service in this process (development keys): (its database URL, its base URL)."""
    from attune_checkins.bootstrap import build_app
    from attune_checkins.config import Settings as CheckinsSettings
    from attune_runtime.tansu import free_port
    from prometheus_client import CollectorRegistry
    from support.inprocess import serving

    from security.test_kafkatrust import FERNET_KEY

    port = free_port()
    settings = CheckinsSettings(
        environment="development", kafka_bootstrap_servers=kafka_bootstrap, database_url=pg_url,
        kafka_session_timeout_ms=6000, http_port=port, notes_key=SecretStr(FERNET_KEY), retry_base_delay_s=0.05,
        retry_max_delay_s=0.2)
    async with serving(build_app(settings, registry=CollectorRegistry()), port) as base:
        yield pg_url, base


async def test_replay_opens_a_sealed_letter_through_its_service_and_says_so_once_the_household_is_erased(
        kafka_bootstrap: str, checkins_at: tuple[str, str]) -> None:
    import httpx
    from aiokafka import AIOKafkaConsumer
    from attune_cli.config import CliConfig
    from attune_cli.dlq import read_dead_letters, replay
    from attune_contracts.credentials import CredentialIssuer, development_signing_key

    database, base = checkins_at
    household = uuid.uuid4()
    value = json.dumps({"event_id": str(uuid.uuid4()), "type": "checkins.log_moment", "version": 1,
                        "household_id": str(household), "payload": {"kind": "bogus", "note": SECRET_NOTE}}).encode()
    source = Topic.CHECKINS_COMMANDS.value
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(source, value, key=str(household).encode())
    finally:
        await producer.stop()
    sha256 = hashlib.sha256(value).hexdigest()

    async def sealed_ref() -> str | None:
        found = [ref for ref, letter in await read_dead_letters(kafka_bootstrap)
                 if letter.value_sha256 == sha256 and letter.sealed is not None]
        return found[0] if found else None

    ref = await eventually(sealed_ref, timeout=40, interval=0.5)
    issuer = CredentialIssuer(development_signing_key())
    config = CliConfig(kafka=kafka_bootstrap, checkins_url=base, operator_token=issuer.operator())

    # Least privilege: no credential, or a household's, opens nothing; no key ever leaves the service.
    [letter] = [d for r, d in await read_dead_letters(kafka_bootstrap) if r == ref]
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.post("/v1/dead-letters/open", content=letter.model_dump_json())).status_code == 401
        household_credential = {"Authorization": f"Bearer {issuer.household(household)}"}
        answer = await client.post("/v1/dead-letters/open", content=letter.model_dump_json(),
                                   headers=household_credential)
        assert answer.status_code == 403 and "operator credential" in answer.json()["detail"]

    before = await replay(kafka_bootstrap, [ref], config)
    assert before.replayed == [ref] and before.refused == {}
    consumer = AIOKafkaConsumer(source, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                group_id=f"replayed-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    try:
        async def replayed_copy() -> bytes | None:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    if ("replayed_from_dlq", ref.encode()) in list(record.headers):
                        return record.value
            return None

        assert await eventually(replayed_copy, timeout=30, interval=0) == value  # the exact original bytes
    finally:
        await consumer.stop()

    await produce(kafka_bootstrap, forged(HouseholdErased(erased_at=datetime.now(UTC)), household))
    engine = create_async_engine(database)
    try:
        from attune_checkins.adapters.tables import dead_letter_keys

        async def key_gone() -> bool:
            async with engine.connect() as conn:
                return (await conn.execute(select(dead_letter_keys.c.scope).where(
                    dead_letter_keys.c.scope == f"household:{household}"))).first() is None

        await eventually(key_gone, timeout=30, interval=0.2)
    finally:
        await engine.dispose()
    after = await replay(kafka_bootstrap, [ref], config)
    assert after.replayed == []
    assert "410" in after.refused[ref] and "its household was erased" in after.refused[ref], after.refused


@pytest.mark.unit
def test_a_service_started_without_its_dead_letter_key_exits_naming_it(tmp_path: Path) -> None:
    """operator — starts the scheduler with every other secret but no dead-letter key — it exits, naming it."""
    import os
    import subprocess
    import sys

    from attune_contracts.credentials import generate_key_pair

    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")}
    env |= {"ATTUNE_SCHEDULER_ENVIRONMENT": "production",
            "ATTUNE_SCHEDULER_CREDENTIAL_KEYS": generate_key_pair("2027a")[1]}
    run = subprocess.run([sys.executable, "-m", "attune_scheduler"], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode != 0
    assert "ATTUNE_SCHEDULER_DEAD_LETTER_KEY is missing" in run.stderr and "Fernet.generate_key()" in run.stderr
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
