"""Writes docs/CONFIGURATION.md from the services' settings classes (python -m attune_cli.configdoc).

The settings classes are the truth; this page is generated from them so it cannot drift.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr


def _settings_classes() -> list[tuple[str, type]]:
    from attune_app.config import Settings as AppSettings
    from attune_checkins.config import Settings as CheckinsSettings
    from attune_notifier.config import NotifierSettings
    from attune_scheduler.config import SchedulerSettings

    return [("scheduler", SchedulerSettings), ("checkins", CheckinsSettings), ("notifier", NotifierSettings),
            ("app", AppSettings)]


def _default(field: Any) -> str:
    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        return "(development value)"
    if value is None:
        return "—"
    return f"`{getattr(value, 'value', value)}`"


FALLBACK = {
    "http_port": "HTTP port",
    "group_id": "Kafka consumer group of the command consumer",
    "consumer_group": "Kafka consumer group",
    "relay_poll_s": "longest wait of the outbox relay between looks for due rows",
    "metrics_refresh_s": "how often gauges (active rituals, outbox backlog) are recomputed",
    "weekly_summary_catch_up_hours": "a missed Sunday summary is still published this long after its hour",
    "ratio_window_days": "positive:negative moments are counted over this many days",
    "ratio_min_moments": "no RatioDropped below this many moments in the window",
    "link_snooze_minutes": "how long a one-tap 'snooze' postpones the ritual",
    "link_occurrence_wait_s": "how long a one-tap link waits for an occurrence this service has not heard of yet",
    "timer_max_sleep_s": "longest sleep of the deadline/summary timer",
    "link_kid": "key id (from LINK_KEYS) that signs new one-tap links",
    "checkins_public_url": "base URL of the check-ins service as people's phones reach it (one-tap links)",
    "delivery_concurrency": "Apprise sends in flight at once",
    "delivery_batch": "due deliveries claimed per round",
    "delivery_attempts_per_channel": "attempts on one channel before falling back to the next",
    "delivery_retry_base_s": "first retry delay (doubles, with jitter)",
    "delivery_retry_max_s": "longest retry delay",
    "delivery_idle_poll_s": "longest wait between delivery rounds when nothing is due",
    "send_timeout_s": "one Apprise send gives up after this long",
    "database_url": "SQLAlchemy async URL: sqlite+aiosqlite:///path (default) or postgresql+asyncpg://user:pw@host/db",
}


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the settings classes by `python -m attune_cli.configdoc`; a test fails when it is stale.",
        "Each service reads only its own prefix. Secrets are refused outside development when missing or",
        "placeholders (`ATTUNE_<SERVICE>_ENVIRONMENT=production`).",
        "",
    ]
    for service, cls in _settings_classes():
        prefix = cls.model_config.get("env_prefix", "")
        secrets = set(cls.model_fields["secret_fields"].default or ())
        lines += [f"## {service}", "", "| variable | default | secret | meaning |", "|---|---|---|---|"]
        for name, field in cls.model_fields.items():
            if name == "secret_fields":
                continue
            meaning = (field.description or FALLBACK.get(name, "")).replace("|", "\\|")
            lines.append(f"| `{prefix}{name.upper()}` | {_default(field)} | {'yes' if name in secrets else ''} | {meaning} |")
        lines.append("")
    lines += [
        "## attune CLI",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
        "| `ATTUNE_KAFKA` | `127.0.0.1:9092` | Kafka bootstrap servers |",
        "| `ATTUNE_SCHEDULER_URL` | `http://127.0.0.1:8101` | the scheduler HTTP API (`attune export`) |",
        "| `ATTUNE_KAFKA_SECURITY_PROTOCOL` | `PLAINTEXT` | `SASL_PLAINTEXT` or `SASL_SSL` against compose's Kafka |",
        "| `ATTUNE_KAFKA_SASL_MECHANISM` | `SCRAM-SHA-512` | SASL mechanism |",
        "| `ATTUNE_KAFKA_SASL_USERNAME` | — | `attune-cli` (or `attune-operator` for `attune dlq`) |",
        "| `ATTUNE_KAFKA_SASL_PASSWORD` | — | that principal's password (`KAFKA_CLI_PASSWORD`, `KAFKA_OPERATOR_PASSWORD`) |",
        "| `ATTUNE_KAFKA_SSL_CAFILE` | — | CA bundle for `SASL_SSL` |",
        "| `ATTUNE_CHECKINS_URL` | `http://127.0.0.1:8102` | the check-ins HTTP API |",
        "| `ATTUNE_NOTIFIER_URL` | `http://127.0.0.1:8103` | the notifier HTTP API |",
        "| `ATTUNE_APP_URL` | `http://127.0.0.1:8104` | the web app, for `attune dlq replay` (the dead letters it sealed) |",
        "| `ATTUNE_HOUSEHOLD_TOKEN` | — | the household's credential, for `member add --push …`, `status` and `export` |",
        ("| `ATTUNE_OPERATOR_TOKEN` | — | an operator credential (`attune credentials issue operator`): `attune dlq "
         "replay` opens sealed dead letters through the service that sealed them; minted for 15 minutes from "
         "ATTUNE_SIGNING_KEY when unset |"),
        ("| `ATTUNE_SIGNING_KEY` | — | the issuer's Ed25519 key (`attune credentials keygen`): `attune credentials "
         "issue`; without ATTUNE_HOUSEHOLD_TOKEN the CLI mints itself a 15-minute household credential with it |"),
        ("| `ATTUNE_FIELD_KEYS` | development key towards a Kafka on this machine only | the services' field "
         "keys: seal the names and titles the CLI sends, open the facts it reads |"),
        "| `ATTUNE_CLI_STATE` | `data/cli-state.json` | the CLI's current household and member names |",
        "| `ATTUNE_CONFIG` | `attune.toml` | optional TOML file with the same keys in lower case (`kafka = ...`) |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/CONFIGURATION.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
