"""deploy/k8s: the base and the production overlay, rendered (tests/deploy/kustomize.py), validated against the
Kubernetes schemas (kubernetes-validate, offline), checked by checkov, and read for what every service must have:
probes on /readyz and /healthz, resources, a disruption budget, autoscaling, Prometheus discovery, a network
policy, non-root with a read-only root filesystem, secrets only from Secret objects."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml


def _renderer() -> Any:
    # tests/deploy/kustomize.py, loaded from its path (the tests are not a package)
    spec = importlib.util.spec_from_file_location("attune_test_kustomize", Path(__file__).with_name("kustomize.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render


render = _renderer()

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = render(K8S / "base")
PRODUCTION = render(K8S / "overlays" / "production")
# Every service of services/, and the web app (services/app) being written beside this deployment.
SERVICES = sorted({p.name for p in (ROOT / "services").iterdir() if (p / f"attune_{p.name}").is_dir()} | {"app"})
PORTS = {"scheduler": 8101, "checkins": 8102, "notifier": 8103, "app": 8104}
KUBERNETES_VERSION = "1.32"
SECRET_WORDS = ("KEY", "PASSWORD", "SECRET", "TOKEN", "DATABASE_URL")


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def pod_of(deployment: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    template = deployment["spec"]["template"]
    return template, template["spec"]["containers"][0]


@pytest.mark.parametrize("docs", [BASE, PRODUCTION], ids=["base", "production"])
def test_every_manifest_is_valid_against_the_kubernetes_schemas(docs: list[dict[str, Any]]) -> None:
    assert len(docs) > 30
    for doc in docs:
        # strict: an unknown or misspelt field is an error, not silently dropped by the API server.
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_does_refuse_a_wrong_manifest() -> None:
    deployment = json.loads(json.dumps(by_kind(BASE, "Deployment")["attune-scheduler"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("docs", [BASE, PRODUCTION], ids=["base", "production"])
def test_every_service_has_probes_resources_a_budget_autoscaling_and_discovery(
        docs: list[dict[str, Any]], service: str) -> None:
    name = f"attune-{service}"
    deployment = by_kind(docs, "Deployment")[name]
    template, container = pod_of(deployment)
    port = PORTS[service]
    assert container["command"] == ["python", "-m", f"attune_{service}"]
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    env = {e["name"]: e for e in container["env"]}
    prefix = f"ATTUNE_{service.upper()}_"
    assert all(key.startswith(prefix) for key in env), f"{service} reads only its own prefix"
    assert env[f"{prefix}HTTP_PORT"]["value"] == str(port) and env[f"{prefix}HTTP_HOST"]["value"] == "0.0.0.0"
    assert env[f"{prefix}ENVIRONMENT"]["value"] == "production"
    assert env[f"{prefix}KAFKA_CREATE_TOPICS"]["value"] == "false", "topics are created by the topic-init Job"
    # its own SCRAM user, the principal deploy/kafka/acls.txt grants (the web app's is attune-app)
    assert env[f"{prefix}KAFKA_SASL_USERNAME"]["value"] == ("attune-app" if service == "app" else service)
    assert env[f"{prefix}KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": name, "key": "kafka-sasl-password"}

    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{service} {kind}"

    labels = template["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"], labels)
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"

    budgets = [p for p in by_kind(docs, "PodDisruptionBudget").values() if selects(p["spec"]["selector"], labels)]
    assert len(budgets) == 1, f"{service} needs one PodDisruptionBudget"
    replicas = deployment["spec"]["replicas"]
    assert replicas >= 2 and budgets[0]["spec"]["minAvailable"] < replicas, "a node drain must be possible"

    scalers = [h for h in by_kind(docs, "HorizontalPodAutoscaler").values()
               if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}]
    assert len(scalers) == 1 and scalers[0]["spec"]["minReplicas"] == replicas
    assert scalers[0]["spec"]["maxReplicas"] > replicas

    service_object = by_kind(docs, "Service")[name]
    assert selects({"matchLabels": service_object["spec"]["selector"]}, labels)


@pytest.mark.parametrize("docs", [BASE, PRODUCTION], ids=["base", "production"])
def test_every_pod_is_non_root_with_a_read_only_root_filesystem(docs: list[dict[str, Any]]) -> None:
    pods = [d for d in docs if d["kind"] in ("Deployment", "Job")]
    assert len(pods) == 2 * len(SERVICES) + 2  # the services, their migrations, kafka_exporter and topic-init
    for doc in pods:
        spec = doc["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, doc["metadata"]["name"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])


@pytest.mark.parametrize("docs", [BASE, PRODUCTION], ids=["base", "production"])
def test_secrets_come_only_from_secret_objects(docs: list[dict[str, Any]]) -> None:
    assert not by_kind(docs, "Secret"), "no Secret (nor any secret value) is kept in the repository"
    text = yaml.safe_dump_all(docs)
    # a password flag only ever expands a variable that comes from a Secret (kafka_exporter's)
    assert not re.search(r"password=(?!\$\()", text, re.IGNORECASE) and "postgresql+asyncpg://" not in text
    checked = 0
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                if any(word in env["name"] for word in SECRET_WORDS):
                    assert "secretKeyRef" in env.get("valueFrom", {}), f"{doc['metadata']['name']}: {env['name']}"
                    checked += 1
    assert checked >= 15


SETTINGS = {"scheduler": "attune_scheduler.config:SchedulerSettings", "checkins": "attune_checkins.config:Settings",
            "notifier": "attune_notifier.config:NotifierSettings", "app": "attune_app.config:Settings"}


@pytest.mark.parametrize("service", SERVICES)
def test_every_secret_a_service_requires_comes_from_its_secret(service: str) -> None:
    # A secret the service refuses to start without in production (its settings' secret_fields), and its
    # Kafka password, must be in the Deployment, from the service's Secret.
    module_name, _, class_name = SETTINGS[service].partition(":")
    if importlib.util.find_spec(module_name.split(".")[0]) is None:
        pytest.skip(f"{module_name} is not in this tree yet")
    settings_class = getattr(importlib.import_module(module_name), class_name)
    container = pod_of(by_kind(PRODUCTION, "Deployment")[f"attune-{service}"])[1]
    env = {e["name"]: e for e in container["env"]}
    prefix = settings_class.model_config["env_prefix"]
    required = {*settings_class.model_fields["secret_fields"].default, "kafka_sasl_password", "database_url"}
    required |= {name for name, field in settings_class.model_fields.items()  # e.g. "required outside development"
                 if "SecretStr" in str(field.annotation) and "required" in (field.description or "")}
    for field in sorted(required):
        variable = prefix + field.upper()
        assert variable in env, f"{service} needs {variable} in production: add it from the Secret attune-{service}"
        assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == f"attune-{service}", variable


def test_production_topics_have_three_copies_two_in_sync_and_the_jobs_read_them() -> None:
    config = by_kind(PRODUCTION, "ConfigMap")["attune-config"]["data"]
    assert config["kafka-replication-factor"] == "3" and config["kafka-min-insync-replicas"] == "2"
    assert by_kind(BASE, "ConfigMap")["attune-config"]["data"]["kafka-replication-factor"] == "1"
    job = by_kind(PRODUCTION, "Job")["attune-topic-init"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "attune_runtime.topic_init"]
    env = {e["name"]: e for e in container["env"]}
    for variable, key in (("ATTUNE_KAFKA_REPLICATION_FACTOR", "kafka-replication-factor"),
                          ("ATTUNE_KAFKA_MIN_INSYNC_REPLICAS", "kafka-min-insync-replicas")):
        assert env[variable]["valueFrom"]["configMapKeyRef"] == {"name": "attune-config", "key": key}
    # The settings the Job reads accept them (and would refuse min.insync above the copies).
    from attune_runtime.topic_init import TopicInitSettings

    settings = TopicInitSettings(kafka_replication_factor=config["kafka-replication-factor"],
                                 kafka_min_insync_replicas=config["kafka-min-insync-replicas"])
    assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (3, 2)


def test_a_migration_job_per_service_the_migrate_command_knows() -> None:
    from attune_cli.migrate import MIGRATIONS

    jobs = by_kind(PRODUCTION, "Job")
    for service in MIGRATIONS:
        container = jobs[f"attune-migrate-{service}"]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["python", "-m", "attune_cli.migrate", service]
        (env,) = container["env"]
        assert env["name"] == f"ATTUNE_{service.upper()}_DATABASE_URL"
        assert env["valueFrom"]["secretKeyRef"] == {"name": f"attune-{service}", "key": "database-url"}


def test_network_policies_deny_by_default_and_let_each_service_reach_only_kafka_postgresql_and_callers() -> None:
    policies = by_kind(PRODUCTION, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    for service in SERVICES:
        spec = policies[f"attune-{service}"]["spec"]
        assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": f"attune-{service}"}}
        ports = {p["port"] for rule in spec["egress"] for p in rule["ports"]}
        allowed = {9093, 5432}
        if service == "app":  # the web app calls the check-ins API
            allowed |= {PORTS["checkins"]}
        if service == "notifier":  # deliveries: HTTPS and SMTP submission to the providers
            allowed |= {443, 465, 587}
        assert ports == allowed, f"{service} egress {ports}"
        for rule in spec["egress"]:
            for peer in rule["to"]:
                if "ipBlock" in peer:  # the internet, never the cluster's private ranges
                    assert service == "notifier" and "10.0.0.0/8" in peer["ipBlock"]["except"]
        (ingress,) = spec["ingress"]
        assert ingress["ports"] == [{"protocol": "TCP", "port": PORTS[service]}]
        sources = [peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                   for peer in ingress["from"]]
        assert "monitoring" in sources, f"Prometheus must reach {service}"
        callers = {peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in ingress["from"]
                   if "namespaceSelector" not in peer}
        assert callers == ({"attune-app"} if service == "checkins" else set()), f"{service} callers {callers}"


def test_the_namespace_enforces_the_restricted_pod_security_standard() -> None:
    namespace = by_kind(PRODUCTION, "Namespace")["attune"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(d["metadata"].get("namespace") == "attune" for d in PRODUCTION if d["kind"] != "Namespace")
    images = {c["image"] for d in PRODUCTION if d["kind"] in ("Deployment", "Job")
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert "attune:latest" not in images, "production names the released image"


def test_the_lag_autoscaling_overlay_scales_each_service_on_its_consumer_group() -> None:
    from attune_contracts.topics import CATALOG, CONSUMER_GROUPS

    keda = render(K8S / "overlays" / "production-keda")
    assert not by_kind(keda, "HorizontalPodAutoscaler"), "KEDA makes its own; two autoscalers would fight"
    for doc in keda:  # everything but KEDA's own kinds is checked against the Kubernetes schemas
        if not doc["apiVersion"].startswith("keda.sh/"):
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    (auth,) = by_kind(keda, "TriggerAuthentication").values()
    assert {ref["name"] for ref in auth["spec"]["secretTargetRef"]} == {"attune-keda-kafka"}
    assert {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]} == {"sasl", "username", "password", "tls", "ca"}
    scaled = by_kind(keda, "ScaledObject")
    deployments = by_kind(keda, "Deployment")
    groups = {f"attune-{s}": f"attune-{s}" for s in SERVICES}  # each service's consumer group has its name
    for service in SERVICES:
        name = f"attune-{service}"
        obj = scaled[name]
        assert obj["metadata"]["namespace"] == "attune" and obj["spec"]["scaleTargetRef"] == {"name": name}
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["type"] == "kafka" and trigger["authenticationRef"] == {"name": "attune-kafka-lag"}
        assert trigger["metadata"]["consumerGroup"] == groups[name]
        assert obj["spec"]["minReplicaCount"] == deployments[name]["spec"]["replicas"]
        # never more pods than the fewest partitions of a topic the group reads (the extra ones would idle)
        principal = next((p for p, g in CONSUMER_GROUPS.items() if g == groups[name]), None)
        if principal is not None:
            fewest = min(spec.partitions for spec in CATALOG.values() if principal in spec.consumers)
            assert obj["spec"]["maxReplicaCount"] <= fewest, name


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed: the renderer is not cross-checked")
@pytest.mark.parametrize("directory", ["base", "overlays/production", "overlays/production-keda"])
def test_the_renderer_agrees_with_kubectl_kustomize(directory: str) -> None:
    run = subprocess.run(["kubectl", "kustomize", str(K8S / directory)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    theirs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(run.stdout)}
    mine = {(d["kind"], d["metadata"]["name"]): d for d in render(K8S / directory)}
    assert mine == theirs


@pytest.mark.slow
@pytest.mark.parametrize("overlay", ["production", "production-keda"])
def test_the_policy_check_passes_with_every_accepted_finding_justified(tmp_path: Path, overlay: str) -> None:
    checkov = ROOT / ".tools" / "checkov" / "bin" / "checkov"
    if not checkov.exists():
        pytest.fail("checkov is missing: `make test` (or `make k8s-check`) installs it into .tools/checkov")
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(yaml.safe_dump_all(render(K8S / "overlays" / overlay), sort_keys=False))
    run = subprocess.run([str(checkov), "-f", str(rendered), "--framework", "kubernetes", "--skip-download",
                          "--compact", "-o", "json"], capture_output=True, text=True, timeout=600, check=False)
    report = json.loads(run.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0 and not failed, failed
    assert summary["passed"] > 500
    for skipped in report["results"]["skipped_checks"]:
        # each accepted finding says why, in the manifest itself
        assert len(skipped["check_result"].get("suppress_comment", "")) > 40, skipped["check_id"]


def _relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus's relabelling (keep and replace, the actions deploy/k8s/prometheus.yml uses)."""
    out = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(out.get(name, "") for name in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep":
            if match is None:
                return None
        elif action == "replace":
            if match is not None:
                out[rule["target_label"]] = match.expand(re.sub(r"\$(\d+)", r"\\g<\1>", rule.get("replacement", "$1")))
        else:
            raise AssertionError(f"unknown relabel action {action}")
    return out


def test_prometheus_in_the_cluster_finds_every_replica_through_the_pod_annotations() -> None:
    # promtool of Debian's prometheus is built without Kubernetes discovery, so the config's relabelling is
    # applied here to the labels Prometheus gives each rendered pod.
    config = yaml.safe_load((K8S / "prometheus.yml").read_text())
    assert config["rule_files"] == ["../alerts.yml"] and (K8S / config["rule_files"][0]).exists()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"attune", "kafka-exporter"}  # the jobs deploy/alerts.yml names
    found: dict[str, set[str]] = {name: set() for name in jobs}
    for deployment in by_kind(PRODUCTION, "Deployment").values():
        template = deployment["spec"]["template"]
        meta = {"__address__": "10.1.2.3", "__meta_kubernetes_pod_name": f"{deployment['metadata']['name']}-x1",
                "__metrics_path__": "/metrics"}
        for key, value in template["metadata"]["labels"].items():
            meta["__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
        for key, value in template["metadata"]["annotations"].items():
            meta["__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
        for name, job in jobs.items():
            assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["attune"]}}]
            target = _relabel(meta, job["relabel_configs"])
            if target is None:
                continue
            port = template["spec"]["containers"][0]["ports"][0]["containerPort"]
            assert target["__address__"] == f"10.1.2.3:{port}" and target["__metrics_path__"] == "/metrics"
            found[name].add(target.get("service", deployment["metadata"]["name"]))
    assert found == {"attune": set(SERVICES), "kafka-exporter": {"attune-kafka-exporter"}}
