"""Check-ins settings: secrets refused outside development, link keys parsed, development works out of the box."""

from __future__ import annotations

import base64
import os

import pytest
from attune_checkins.adapters.sql import NoteCipher
from attune_checkins.config import DEV_LINK_KEYS, Settings
from attune_contracts.credentials import development_public_keys, generate_key_pair
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError

pytestmark = [pytest.mark.unit]


def test_development_needs_no_secrets_and_matches_the_notifiers_dev_link_key() -> None:
    settings = Settings(environment="development")
    assert settings.link_key_map() == dict([DEV_LINK_KEYS.split(":", 1)])
    assert settings.current_link_kid() == "dev"
    NoteCipher(settings.fernet_keys())  # a usable Fernet key
    settings.credential_verifier()  # the development key, accepted in development only


def test_production_refuses_missing_or_placeholder_secrets() -> None:
    with pytest.raises(ValidationError, match="ATTUNE_CHECKINS_NOTES_KEY"):
        Settings(environment="production")
    good = {"notes_key": SecretStr(Fernet.generate_key().decode()),
            "credential_keys": generate_key_pair("k1")[1],
            "link_keys": SecretStr("2027a:first-long-secret-0123,2027b:second-long-secret-0123"),
            "dead_letter_key": SecretStr(Fernet.generate_key().decode()),
            "field_keys": SecretStr("k1:" + base64.urlsafe_b64encode(os.urandom(32)).decode())}
    with pytest.raises(ValidationError, match="ATTUNE_CHECKINS_DEAD_LETTER_KEY is missing"):
        Settings(environment="production", **{**good, "dead_letter_key": None})
    with pytest.raises(ValidationError, match="CREDENTIAL_KEYS must be set"):
        Settings(environment="production", **{**good, "credential_keys": None})
    with pytest.raises(ValidationError, match="development key"):
        Settings(environment="production", **{**good, "credential_keys": good["credential_keys"] + ","
                                              + development_public_keys()})
    settings = Settings(environment="production", link_current_kid="2027b", **good)
    assert settings.link_key_map() == {"2027a": "first-long-secret-0123", "2027b": "second-long-secret-0123"}
    assert settings.current_link_kid() == "2027b"
    assert Settings(environment="production", **good).current_link_kid() == "2027a"


def test_a_bad_notes_key_or_link_keys_say_how_to_fix_them() -> None:
    with pytest.raises(ValueError, match=r"Fernet\.generate_key"):
        NoteCipher([b"not-a-fernet-key"])
    with pytest.raises(ValueError, match="kid:secret"):
        Settings(environment="development", link_keys=SecretStr("no-colon-here-at-all")).link_key_map()


def test_rotated_notes_key_still_reads_old_notes() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    sealed = NoteCipher([old]).seal("before the rotation")
    settings = Settings(environment="development", notes_key=SecretStr(new.decode()), notes_old_keys=SecretStr(old.decode()))
    assert NoteCipher(settings.fernet_keys()).open(sealed) == "before the rotation"
    assert "unreadable" in (NoteCipher([new]).open(sealed) or "")


def test_the_app_is_built_outside_an_event_loop(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # main.py builds it at import time, before uvicorn starts the loop: nothing may need a running loop.
    from attune_checkins.bootstrap import build_app

    app = build_app(Settings(environment="development", database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db"))
    assert app.checkins.producer is not None  # type: ignore[attr-defined]
