from __future__ import annotations

import pytest
from attune_runtime.retry import Backoff
from attune_runtime.settings import ServiceSettings
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

pytestmark = [pytest.mark.unit]


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ATTUNE_DEMO_", extra="ignore", frozen=True)
    signing_key: SecretStr | None = None
    secret_fields: tuple[str, ...] = ("signing_key",)


def test_development_accepts_defaults() -> None:
    assert DemoSettings(environment="development").signing_key is None


@pytest.mark.parametrize("value", [None, "changeme", "secret", "short"])
def test_production_refuses_placeholder_secrets(value: str | None) -> None:
    with pytest.raises(ValidationError) as caught:
        DemoSettings(environment="production", signing_key=value)
    assert "ATTUNE_DEMO_SIGNING_KEY is missing or a placeholder" in str(caught.value)


def test_production_accepts_a_real_secret_and_reads_the_prefixed_environment(monkeypatch) -> None:
    monkeypatch.setenv("ATTUNE_DEMO_ENVIRONMENT", "production")
    monkeypatch.setenv("ATTUNE_DEMO_SIGNING_KEY", "k3y-" + "x" * 30)
    monkeypatch.setenv("ATTUNE_DEMO_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    settings = DemoSettings()
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert "x" * 30 not in repr(settings)


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    backoff = Backoff(base_s=1, max_s=30)
    ceilings = [backoff.ceiling(n) for n in range(1, 8)]
    assert ceilings == [1, 2, 4, 8, 16, 30, 30]
    for attempt in range(1, 8):
        for _ in range(50):
            assert backoff.ceiling(attempt) / 2 <= backoff.delay(attempt) <= backoff.ceiling(attempt)
