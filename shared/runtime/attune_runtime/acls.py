"""The broker's ACLs, derived from the topic catalog: what deploy/kafka/acls.txt must say.

Each principal (one SASL/SCRAM user per service, the CLI, the operator, each partner service) may:
- WRITE exactly the topics the catalog names it a producer of (REPLAYERS: every topic that has consumers);
- READ exactly the topics the catalog names it a consumer of;
- READ (join) only its own consumer group (CONSUMER_GROUPS).
The lag monitor (LAG_MONITOR, kafka_exporter) may only DESCRIBE the consumed topics and the services' groups:
committed offsets and log ends, never a record.
Nothing else: no wildcard, no cluster permission (topics are created by the `topic-init` job as the broker's
admin), and the broker allows nobody where no ACL is found.

    python -m attune_runtime.acls > deploy/kafka/acls.txt       write it
    python -m attune_runtime.acls --check deploy/kafka/acls.txt  exit 1 if it differs
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from attune_contracts.topics import CATALOG, CONSUMER_GROUPS, REPLAYERS

HEADER = """\
# Kafka ACLs of the Attune deployment: principal operation resource-type resource-name (all ALLOW, literal).
# Generated from the topic catalog (shared/contracts/attune_contracts/topics.py) by
#   python -m attune_runtime.acls > deploy/kafka/acls.txt
# Do not edit by hand: tests/security/test_kafka_acls.py checks it against the catalog.
"""


# kafka_exporter's SCRAM user (docker-compose.yml, deploy/k8s): broker-side consumer lag for the alerts.
LAG_MONITOR = "kafka-exporter"


@dataclass(frozen=True, order=True)
class Acl:
    principal: str
    operation: str  # READ or WRITE (DESCRIBE for the lag monitor only)
    resource: str  # topic or group
    name: str

    def line(self) -> str:
        return f"{self.principal} {self.operation} {self.resource} {self.name}"


def acls() -> list[Acl]:
    found: set[Acl] = set()
    for spec in CATALOG.values():
        for principal in spec.producers:
            found.add(Acl(principal, "WRITE", "topic", spec.topic.value))
        for principal in spec.consumers:
            found.add(Acl(principal, "READ", "topic", spec.topic.value))
        if any(principal in CONSUMER_GROUPS for principal in spec.consumers):
            for principal in REPLAYERS:
                found.add(Acl(principal, "WRITE", "topic", spec.topic.value))
    for principal, group in CONSUMER_GROUPS.items():
        found.add(Acl(principal, "READ", "group", group))
        found.add(Acl(LAG_MONITOR, "DESCRIBE", "group", group))
    for spec in CATALOG.values():
        if set(spec.consumers) & set(CONSUMER_GROUPS):
            found.add(Acl(LAG_MONITOR, "DESCRIBE", "topic", spec.topic.value))
    return sorted(found)


def render() -> str:
    return HEADER + "".join(f"{acl.line()}\n" for acl in acls())


def parse(text: str) -> list[Acl]:
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 4:
            raise ValueError(f"line {number}: expected 'principal operation resource-type name', got {raw!r}")
        out.append(Acl(*parts))
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"] and len(argv) == 2:
        if Path(argv[1]).read_text() != render():
            print(f"{argv[1]} differs from the catalog: regenerate it with `python -m attune_runtime.acls > "
                  f"{argv[1]}`", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
