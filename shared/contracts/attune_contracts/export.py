"""Write the contracts as JSON Schema files and one AsyncAPI 3.0 document (run by `make contracts`).

    python -m attune_contracts.export shared/contracts/schemas
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .registry import all_specs
from .topics import CATALOG
from .messages import DeadLetter


def _schema(model: type) -> dict[str, Any]:
    return model.model_json_schema(mode="validation", ref_template="#/$defs/{model}")  # type: ignore[attr-defined]


def schema_files() -> dict[str, dict[str, Any]]:
    """One self-contained JSON Schema per message (envelope included), keyed by file name."""
    files: dict[str, dict[str, Any]] = {}
    for spec in all_specs():
        schema = _schema(spec.envelope)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = f"{spec.type} v{spec.version} ({spec.name})"
        schema["description"] = spec.summary
        schema["properties"]["type"]["const"] = spec.type
        schema["properties"]["version"]["const"] = spec.version
        files[f"{spec.type}.v{spec.version}.json"] = schema
    dead = _schema(DeadLetter)
    dead["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    files["deadletter.v1.json"] = dead
    return files


def asyncapi() -> dict[str, Any]:
    specs = all_specs()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic, info in CATALOG.items():
        refs = {}
        for spec in specs:
            if spec.topic is topic:
                name = f"{spec.name}V{spec.version}"
                refs[name] = {"$ref": f"#/components/messages/{name}"}
                messages[name] = {
                    "name": spec.type,
                    "title": spec.name,
                    "summary": spec.summary,
                    "contentType": "application/json",
                    "tags": [{"name": spec.kind}],
                    "bindings": {"kafka": {"key": {"type": "string", "format": "uuid",
                                                   "description": "household_id"}}},
                    "payload": {"$ref": f"../schemas/{spec.type}.v{spec.version}.json"},
                }
        if topic.value == "attune.deadletter":
            refs["DeadLetter"] = {"$ref": "#/components/messages/DeadLetter"}
            messages["DeadLetter"] = {
                "name": "deadletter", "title": "DeadLetter", "contentType": "application/json",
                "summary": "A message a consumer gave up on, with the reason and its original bytes.",
                "payload": {"$ref": "../schemas/deadletter.v1.json"},
            }
        channel_id = topic.value.replace(".", "_")
        channels[channel_id] = {
            "address": topic.value,
            "description": f"{info.description} Key: {info.key}. Partitions: {info.partitions}. "
            f"Produced by: {', '.join(info.producers)}. Consumed by: {', '.join(info.consumers) or 'nobody yet'}.",
            "messages": refs,
            "bindings": {"kafka": {"topic": topic.value, "partitions": info.partitions}},
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"Produced by {', '.join(info.producers)}",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"} for name in refs],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Attune events",
            "version": __version__,
            "description": (
                "Every message is a JSON envelope {event_id, type, version, occurred_at, producer, "
                "correlation_id, household_id, payload}; the Kafka key is the household id. "
                "Within a version changes are additive; a breaking change is a new version, and "
                "consumers accept both during a migration (see shared/contracts/VERSIONING.md)."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"production": {"host": "kafka:9092", "protocol": "kafka"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render() -> dict[str, str]:
    """Every generated file's path (relative to the output folder) and exact text."""
    out = {f"schemas/{name}": json.dumps(body, indent=2, sort_keys=True) + "\n" for name, body in schema_files().items()}
    out["asyncapi/asyncapi.json"] = json.dumps(asyncapi(), indent=2) + "\n"
    return out


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    root = Path(args[0] if args else "shared/contracts").resolve()
    if root.name == "schemas":
        root = root.parent
    rendered = render()
    for old in (root / "schemas").glob("*.json"):
        if f"schemas/{old.name}" not in rendered:
            old.unlink()
    for rel, text in rendered.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(rendered)} files under {root}")


if __name__ == "__main__":
    main()
