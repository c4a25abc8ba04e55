"""A delivery's message params (names, notes, ritual titles) are encrypted at rest with the channel keyring
(issue 13): a database dump reads none of them, yet the message goes out with its words, rows written before
the upgrade still send, and a rotated key still reads old rows. On SQLite and PostgreSQL (their write paths
differ: one statement per row, one over arrays)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from attune_contracts.messages import NotificationRequested, RitualDue
from attune_notifier.adapters.sql import ChannelCipher
from attune_notifier.adapters.tables import deliveries
from attune_runtime.testing import FakeClock
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import text, update

from .conftest import ANA, BEN, HttpSink, utc
from .harness import Harness, make_harness

pytestmark = [pytest.mark.integration]

NOTE = "Ana dreams of the blue house in Lisbon"
TITLE = "A whisper from Ben"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/notifier.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc(2026, 11, 26, 9, 0))


async def raw_params(h: Harness) -> list[str]:
    """The params column as a database dump shows it."""
    async with h.store.engine.connect() as conn:
        return [r[0] for r in (await conn.execute(text("SELECT CAST(params AS TEXT) FROM notifier_deliveries")))]


async def setup(h: Harness, http_sink: HttpSink) -> None:
    await h.member(ANA, "Ana", zone="UTC")
    await h.member(BEN, "Benedict", zone="UTC")
    await h.channel(ANA, http_sink.url("json", "ana"))
    await h.channel(BEN, http_sink.url("json", "ben"))


async def test_params_are_unreadable_in_the_table_and_the_message_still_goes_out_with_its_words(
    db_url: str, clock: FakeClock, http_sink: HttpSink
) -> None:
    h = await make_harness(db_url, clock)
    try:
        await setup(h, http_sink)
        await h.event(NotificationRequested(member_id=ANA, purpose="test.private", title=TITLE, body=NOTE))
        at = clock.now()
        await h.event(RitualDue(occurrence_id=UUID(int=7), ritual_id=UUID(int=8), template="evening_attunement",
                                title="Slow Sunday closeness", participants=[ANA, BEN], scheduled_for=at,
                                local_time=at.isoformat(), time_zone="UTC", sensitive=False,
                                deadline=at + timedelta(hours=12)))
        dump = await raw_params(h)
        assert len(dump) == 3
        for private in (NOTE, "Lisbon", TITLE, "Slow Sunday", "Benedict", '"body"', '"name"'):
            assert not any(private in value for value in dump), (private, dump)
        assert all(json.loads(value).startswith("gAAAAA") for value in dump)  # each a Fernet token
        # The store reads them back for sending
        [request] = [d for d in await h.store.deliveries_for(ANA) if d.purpose == "test.private"]
        assert request.params == {"title": TITLE, "body": NOTE} and request.params_error is None
        await h.worker.drain()
        sent = {(r.path, r.json["title"], r.json["message"]) for r in http_sink.received}
        assert ("/ana", TITLE, NOTE) in sent
        assert any(path == "/ben" and "Slow Sunday closeness" in title + body for path, title, body in sent), sent
        assert len(http_sink.received) == 3
    finally:
        await h.close()


async def test_a_row_written_in_plaintext_before_the_upgrade_still_sends(
    db_url: str, clock: FakeClock, http_sink: HttpSink
) -> None:
    h = await make_harness(db_url, clock)
    try:
        await setup(h, http_sink)
        await h.event(NotificationRequested(member_id=ANA, purpose="test.old", title="old", body="old"))
        await h.event(NotificationRequested(member_id=BEN, purpose="test.new", title="New", body="sealed words"))
        async with h.store.engine.begin() as conn:  # as an older notifier stored it: a plain JSON object
            await conn.execute(update(deliveries).where(deliveries.c.purpose == "test.old")
                               .values(params={"title": "Before", "body": "written before the upgrade"}))
        assert sum("written before the upgrade" in v for v in await raw_params(h)) == 1
        assert not any("sealed words" in v for v in await raw_params(h))
        await h.worker.drain()
        assert sorted((r.path, r.json["title"], r.json["message"]) for r in http_sink.received) == [
            ("/ana", "Before", "written before the upgrade"), ("/ben", "New", "sealed words")]
    finally:
        await h.close()


async def test_at_start_up_rows_from_before_the_upgrade_are_sealed_and_still_send(
    db_url: str, clock: FakeClock, http_sink: HttpSink
) -> None:
    h = await make_harness(db_url, clock)
    try:
        await setup(h, http_sink)
        for member, body in ((ANA, "first old note"), (BEN, "second old note"), (ANA, "new note")):
            await h.event(NotificationRequested(member_id=member, purpose="test.seal", title="T", body=body))
        async with h.store.engine.begin() as conn:  # two rows as an older notifier stored them
            for body in ("first old note", "second old note"):
                row = next(d for d in await h.store.deliveries_for(ANA) + await h.store.deliveries_for(BEN)
                           if d.params["body"] == body)
                await conn.execute(update(deliveries).where(deliveries.c.notification_id == row.notification_id)
                                   .values(params={"title": "T", "body": body}))
        assert sum("old note" in v for v in await raw_params(h)) == 2
        assert await h.store.seal_plaintext_params(page=1) == 2  # page by page
        assert await h.store.seal_plaintext_params() == 0  # nothing left: a second process finds nothing
        dump = await raw_params(h)
        assert len(dump) == 3 and not any("note" in v for v in dump), dump
        await h.worker.drain()
        assert sorted(r.json["message"] for r in http_sink.received) == ["first old note", "new note",
                                                                         "second old note"]
    finally:
        await h.close()


async def test_after_a_key_rotation_old_rows_still_read_and_new_rows_use_the_new_key(
    db_url: str, clock: FakeClock, http_sink: HttpSink
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    h = await make_harness(db_url, clock, key=old_key)
    try:
        await setup(h, http_sink)
        await h.event(NotificationRequested(member_id=ANA, purpose="test.before", title="Before", body="old key"))
        h.store.cipher = ChannelCipher(f"{new_key},{old_key}")  # rotated: the new key first, the old one kept
        await h.event(NotificationRequested(member_id=BEN, purpose="test.after", title="After", body="new key"))
        tokens: dict[str, Any] = {}
        async with h.store.engine.connect() as conn:
            for purpose, value in await conn.execute(text(
                    "SELECT purpose, CAST(params AS TEXT) FROM notifier_deliveries")):
                tokens[purpose] = json.loads(value).encode()
        assert json.loads(Fernet(old_key).decrypt(tokens["test.before"])) == {"title": "Before", "body": "old key"}
        assert json.loads(Fernet(new_key).decrypt(tokens["test.after"])) == {"title": "After", "body": "new key"}
        with pytest.raises(InvalidToken):
            Fernet(old_key).decrypt(tokens["test.after"])
        await h.worker.drain()
        assert sorted((r.path, r.json["message"]) for r in http_sink.received) == [
            ("/ana", "old key"), ("/ben", "new key")]
    finally:
        await h.close()


async def test_params_undecryptable_after_their_key_was_retired_are_not_sent_and_say_why(
    db_url: str, clock: FakeClock, http_sink: HttpSink
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    h = await make_harness(db_url, clock, key=old_key)
    try:
        await h.member(ANA, "Ana", zone="UTC")
        await h.member(BEN, "Ben", zone="UTC")
        await h.channel(ANA, http_sink.url("json", "ana"))
        await h.event(NotificationRequested(member_id=ANA, purpose="test.lost", title="Lost", body=NOTE))
        h.store.cipher = ChannelCipher(new_key)  # the old key is retired too early
        await h.channel(BEN, http_sink.url("json", "ben-new"))
        await h.event(NotificationRequested(member_id=BEN, purpose="test.kept", title="Kept", body="still here"))
        await h.worker.drain()
        assert [(r.path, r.json["message"]) for r in http_sink.received] == [("/ben-new", "still here")]
        [lost] = await h.store.deliveries_for(ANA)
        assert (lost.status, lost.reason) == ("failed", "params_unreadable")
        assert "could not be decrypted with the configured channel keys" in (lost.last_error or "")
        [failed] = h.publisher.events("notification_failed")
        assert NOTE not in str(h.publisher.sent) and old_key not in str(h.publisher.sent)
        assert "could not be decrypted" in failed["payload"]["error"]
    finally:
        await h.close()
