"""Where the CLI finds the system: environment variables, then an optional TOML file, then local defaults."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from attune_contracts.sealing import DEV_FIELD_KEYS, FieldKeys

STATE = Path(os.environ.get("ATTUNE_CLI_STATE", "data/cli-state.json"))


@dataclass(frozen=True)
class CliConfig:
    kafka: str = "127.0.0.1:9092"
    scheduler_url: str = "http://127.0.0.1:8101"
    checkins_url: str = "http://127.0.0.1:8102"
    notifier_url: str = "http://127.0.0.1:8103"
    # The web app: only `attune dlq replay` calls it (opening the dead letters it sealed, operator credential).
    app_url: str = "http://127.0.0.1:8104"
    # The narrowest credential that works: the household's, for member add, status and export.
    household_token: str | None = None
    # The issuer's Ed25519 signing key ('kid:key', `attune credentials keygen`): mints credentials; with it and no
    # household_token, the CLI mints itself a household credential for 15 minutes for each command.
    signing_key: str | None = None
    # An operator credential (`attune credentials issue operator`): `attune dlq replay` opens sealed dead letters
    # through the service that sealed them with it; minted for 15 minutes from signing_key when unset.
    operator_token: str | None = None
    # Kafka with SASL (compose): the CLI is the `attune-cli` principal; `attune dlq` needs `attune-operator`.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = None
    # ATTUNE_FIELD_KEYS, the services' own: seals the names and titles the CLI sends, opens the facts it reads.
    # Unset, the CLI uses the published development key, and only towards a Kafka on this machine (`make run`).
    field_keys: str | None = None

    def field_keyring(self, bootstrap: str | None = None) -> FieldKeys:
        if self.field_keys:
            return FieldKeys.parse(self.field_keys)
        hosts = {server.strip().rsplit(":", 1)[0].strip("[]") for server in (bootstrap or self.kafka).split(",")}
        if hosts <= {"127.0.0.1", "::1", "localhost"}:
            return FieldKeys.parse(DEV_FIELD_KEYS)
        raise SystemExit("attune: set ATTUNE_FIELD_KEYS (the services' field keys) to talk to a Kafka on another "
                         "machine: names and notes are sealed with them")

    def kafka_options(self, bootstrap: str | None = None) -> dict[str, object]:
        """aiokafka client options: where Kafka is, and how to authenticate (ATTUNE_KAFKA_SECURITY_PROTOCOL,
        ATTUNE_KAFKA_SASL_USERNAME, ATTUNE_KAFKA_SASL_PASSWORD, ...)."""
        options: dict[str, object] = {"bootstrap_servers": bootstrap or self.kafka}
        if self.kafka_security_protocol != "PLAINTEXT":
            options["security_protocol"] = self.kafka_security_protocol
            if "SSL" in self.kafka_security_protocol:
                import ssl

                options["ssl_context"] = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
            if "SASL" in self.kafka_security_protocol:
                options.update(sasl_mechanism=self.kafka_sasl_mechanism, sasl_plain_username=self.kafka_sasl_username,
                               sasl_plain_password=self.kafka_sasl_password)
        return options

    @classmethod
    def load(cls, path: Path | None = None) -> CliConfig:
        values: dict[str, str] = {}
        file = path or Path(os.environ.get("ATTUNE_CONFIG", "attune.toml"))
        if file.exists():
            values.update({k: str(v) for k, v in tomllib.loads(file.read_text()).items()})
        for field in cls.__dataclass_fields__:
            env = os.environ.get(f"ATTUNE_{field.upper()}")
            if env:
                values[field] = env
        return cls(**values)  # type: ignore[arg-type]


def _state() -> dict:
    return json.loads(STATE.read_text()) if STATE.exists() else {}


def _save(state: dict) -> None:
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(state, indent=2))


def remember_household(household_id: UUID, time_zone: str) -> None:
    _save({"household_id": str(household_id), "time_zone": time_zone, "members": {}})


def current_household() -> UUID | None:
    value = _state().get("household_id")
    return UUID(value) if value else None


def known_members() -> dict[str, UUID]:
    return {name: UUID(value) for name, value in _state().get("members", {}).items()}


def remember_member(name: str, member_id: UUID) -> None:
    state = _state()
    state.setdefault("members", {})[name.lower()] = str(member_id)
    _save(state)


def resolve_member(name_or_id: str) -> UUID:
    """A member id, or a name this CLI added (`attune member add`)."""
    try:
        return UUID(name_or_id)
    except ValueError:
        known = _state().get("members", {})
        if name_or_id.lower() in known:
            return UUID(known[name_or_id.lower()])
        raise LookupError(
            f"no member called {name_or_id!r} in this CLI's household; use a member id or one of: "
            f"{', '.join(sorted(known)) or '(none added yet)'}"
        ) from None
