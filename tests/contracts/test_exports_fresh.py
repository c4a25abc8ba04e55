"""The checked-in JSON Schemas and AsyncAPI document are what `make contracts` generates today."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import jsonschema
import pytest
from attune_contracts import make_envelope
from attune_contracts.export import render
from attune_contracts.messages import RegisterHousehold

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2] / "shared" / "contracts"


def test_generated_files_are_up_to_date() -> None:
    stale = [rel for rel, text in render().items()
             if not (ROOT / rel).exists() or (ROOT / rel).read_text() != text]
    extra = sorted(p.name for p in (ROOT / "schemas").glob("*.json") if f"schemas/{p.name}" not in render())
    assert not stale and not extra, f"run `make contracts` and commit: stale {stale}, obsolete {extra}"


def test_json_schema_accepts_what_the_models_produce() -> None:
    schema = json.loads((ROOT / "schemas" / "scheduler.register_household.v1.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = json.loads(make_envelope(RegisterHousehold(name="A", time_zone="UTC"), household_id=uuid.uuid4(),
                                   producer="other-team").to_bytes())
    jsonschema.validate(doc, schema)
    doc["payload"]["extra"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_asyncapi_names_every_topic_and_message() -> None:
    document = json.loads((ROOT / "asyncapi" / "asyncapi.json").read_text())
    assert document["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert "attune.rituals.occurrences" in addresses and "attune.deadletter" in addresses
    for message in document["components"]["messages"].values():
        assert (ROOT / "asyncapi" / message["payload"]["$ref"]).resolve().exists()
