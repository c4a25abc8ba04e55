"""The credential-keys settings written once (attune_runtime.settings.CredentialKeysSettings)."""

from __future__ import annotations

from typing import ClassVar

import pytest
from attune_contracts.credentials import development_public_keys
from attune_runtime.settings import CredentialKeysSettings
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

pytestmark = [pytest.mark.unit]


class Demo(CredentialKeysSettings):
    model_config = SettingsConfigDict(env_prefix="ATTUNE_DEMO_", extra="ignore", frozen=True)


class DemoCheckedLater(Demo):
    credential_keys_checked_at_start: ClassVar[bool] = False


def test_missing_keys_are_refused_at_start_with_the_service_setting_name() -> None:
    with pytest.raises(ValidationError, match="ATTUNE_DEMO_CREDENTIAL_KEYS must be set outside development"):
        Demo(environment="production")


def test_the_development_key_is_refused_outside_development() -> None:
    with pytest.raises(ValidationError, match="ATTUNE_DEMO_CREDENTIAL_KEYS"):
        Demo(environment="production", credential_keys=development_public_keys())


def test_development_verifies_with_the_development_key() -> None:
    assert Demo(environment="development").credential_verifier() is not None


def test_a_service_that_checks_later_is_not_refused_at_start_but_its_verifier_still_refuses() -> None:
    settings = DemoCheckedLater(environment="production")
    with pytest.raises(ValueError, match="ATTUNE_DEMO_CREDENTIAL_KEYS must be set outside development"):
        settings.credential_verifier()
