"""The app's pure core: tokens, join-link rules, what a person sees of the rituals and of today, the ratio's
words, and the settings that fail closed outside development."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from attune_app.config import Settings
from attune_app.service import (
    CheckIn,
    Invite,
    Occurrence,
    Ritual,
    catalog_by_step,
    describe_rhythm,
    form_token,
    form_token_valid,
    invite_refusal,
    ratio_of,
    ritual_views,
    rrule_for,
    today_items,
    token_hash,
)
from attune_contracts.credentials import development_signing_key, generate_key_pair
from pydantic import ValidationError

pytestmark = [pytest.mark.unit]
NOW = datetime(2026, 6, 3, 17, 0, tzinfo=UTC)


def test_form_tokens_belong_to_one_browser() -> None:
    key = b"k" * 32
    token = form_token(key, "browser-a")
    assert form_token_valid(key, "browser-a", token)
    assert not form_token_valid(key, "browser-b", token)
    assert not form_token_valid(b"x" * 32, "browser-a", token)
    assert not form_token_valid(key, None, token) and not form_token_valid(key, "browser-a", "")


def test_a_token_hash_does_not_contain_the_token() -> None:
    assert token_hash("abc") != "abc" and len(token_hash("abc")) == 64 and token_hash("abc") == token_hash("abc")


def test_join_links_are_single_use_and_expire() -> None:
    fresh = Invite(uuid4(), "partner", NOW + timedelta(hours=1), None)
    assert invite_refusal(fresh, NOW) is None
    assert "already been used" in (invite_refusal(Invite(fresh.household_id, "partner", fresh.expires_at, NOW), NOW)
                                   or "")
    assert "expired" in (invite_refusal(fresh, NOW + timedelta(hours=1)) or "")
    assert "isn't one we know" in (invite_refusal(None, NOW) or "")


def test_the_catalog_follows_the_article_and_the_household() -> None:
    couple = catalog_by_step("couple")
    assert [number for number, _, _ in couple] == sorted(number for number, _, _ in couple)
    keys = {t.key for _, _, templates in couple for t in templates}
    assert {"evening_attunement", "date_night", "experiment_together"} <= keys
    assert "after_intimacy" not in keys  # on demand, never scheduled
    assert "parent_child_attunement" not in keys
    family = {t.key for _, _, templates in catalog_by_step("family") for t in templates}
    assert "parent_child_attunement" in family and "experiment_together" not in family


def test_days_become_an_rrule() -> None:
    assert rrule_for(["FR"], "FREQ=DAILY") == "FREQ=WEEKLY;BYDAY=FR"
    assert rrule_for(["SU", "MO"], "FREQ=DAILY") == "FREQ=WEEKLY;BYDAY=MO,SU"
    assert rrule_for([], "FREQ=WEEKLY;BYDAY=SA") == "FREQ=WEEKLY;BYDAY=SA"
    assert rrule_for(["XX; FREQ=SECONDLY"], "FREQ=DAILY") == "FREQ=DAILY"  # nothing but weekday codes gets in
    assert rrule_for(["MO", "TU", "WE", "TH", "FR", "SA", "SU"], "x") == "FREQ=DAILY"
    assert describe_rhythm("FREQ=WEEKLY;BYDAY=FR", "19:30") == "every Fri at 19:30"


def test_a_sensitive_ritual_is_not_named_to_whoever_has_not_said_yes() -> None:
    ana, ben = uuid4(), uuid4()
    ritual = Ritual(uuid4(), "experiment_together", "Try something new together", (ana, ben), "FREQ=WEEKLY;BYDAY=SA",
                    "21:00", True, "awaiting_consent", frozenset({ana}))
    (for_ben,) = ritual_views([ritual], ben)
    assert for_ben.title == "A private ritual" and for_ben.when == "" and for_ben.may_consent
    assert "Try something new" not in for_ben.state_words
    (for_ana,) = ritual_views([ritual], ana)
    assert for_ana.title == "Try something new together" and not for_ana.may_consent
    active = Ritual(*[getattr(ritual, f) for f in ("ritual_id", "template", "title", "participants", "rrule",
                                                   "local_time", "sensitive")], "active", frozenset({ana, ben}))
    assert ritual_views([active], ben)[0].title == "Try something new together"
    assert ritual_views([ritual], uuid4()) == []  # not a participant: not shown at all


def test_today_shows_my_occurrences_of_the_local_day_and_who_kept_them() -> None:
    ana, ben = uuid4(), uuid4()
    zone = "America/New_York"  # NOW is 13:00 there
    tonight = Occurrence(uuid4(), uuid4(), "evening_attunement", "Evening attunement", (ana, ben),
                         NOW + timedelta(hours=7), NOW + timedelta(hours=19), False)
    yesterday = Occurrence(uuid4(), uuid4(), "evening_attunement", "Evening attunement", (ana, ben),
                           NOW - timedelta(hours=17), NOW - timedelta(hours=5), False)
    not_mine = Occurrence(uuid4(), uuid4(), "date_night", "Date night", (ben,), NOW, NOW + timedelta(hours=1), False)
    items = today_items([tonight, yesterday, not_mine], [CheckIn(tonight.occurrence_id, ben, "done", 5)],
                        {ana: "Ana", ben: "Ben"}, ana, NOW, zone)
    assert [i.occurrence_id for i in items] == [tonight.occurrence_id]
    assert items[0].at == "20:00" and items[0].open and items[0].mine is None
    assert items[0].others == [("Ben", "kept it")]


def test_the_ratio_in_words() -> None:
    assert "No moments" in ratio_of([]).words
    assert ratio_of(["positive"] * 5 + ["negative"]).words.startswith("5 kind moments to 1 hard, about 5.0 to 1")
    assert "five kind moments for each hard one" in ratio_of(["positive", "negative"]).words
    assert ratio_of(["positive", "other"]).positive == 1


def test_outside_development_the_signing_key_is_required_and_not_the_published_one() -> None:
    with pytest.raises(ValidationError, match="SIGNING_KEY"):
        Settings(environment="production", public_url="https://attune.example")
    with pytest.raises(ValidationError, match="development key"):
        Settings(environment="production", public_url="https://attune.example", signing_key=development_signing_key())
    signing, _ = generate_key_pair("app1")
    with pytest.raises(ValidationError, match="PUBLIC_URL"):
        Settings(environment="production", signing_key=signing)
    # The operator's public keys (the dead-letter open route): required, and the development one refused.
    with pytest.raises(ValidationError, match="ATTUNE_APP_CREDENTIAL_KEYS must be set"):
        Settings(environment="production", signing_key=signing, public_url="https://attune.example")
    from attune_contracts.credentials import development_public_keys
    from cryptography.fernet import Fernet
    from pydantic import SecretStr

    with pytest.raises(ValidationError, match="development"):
        Settings(environment="production", signing_key=signing, public_url="https://attune.example",
                 credential_keys=development_public_keys(), dead_letter_key=SecretStr(Fernet.generate_key().decode()))
    operator_public = generate_key_pair("ops1")[1]
    settings = Settings(environment="production", signing_key=signing, public_url="https://attune.example",
                        credential_keys=operator_public, dead_letter_key=SecretStr(Fernet.generate_key().decode()),
                        field_keys=SecretStr("k1:" + base64.urlsafe_b64encode(os.urandom(32)).decode()))
    assert settings.secure_cookies and settings.issuer().kid == "app1"
    assert not Settings(environment="development").secure_cookies


async def test_the_migrations_build_exactly_the_tables(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from alembic import command
    from attune_app.adapters.migrate import alembic_config, upgrade
    from attune_app.adapters.sql import make_engine

    url = f"sqlite+aiosqlite:///{tmp_path}/app.db"
    engine = make_engine(url)
    await upgrade(engine)
    await upgrade(engine)  # every start runs it: the second is a no-op
    await engine.dispose()
    await asyncio.to_thread(command.check, alembic_config(url))  # raises if tables.py and the migrations differ
