"""The broker's ACLs against the topic catalog and the code. Tansu (development, tests) cannot enforce ACLs, so
what compose's Kafka enforces is checked here: deploy/kafka/acls.txt gives each principal exactly the topics
the catalog says it touches, each service exactly the topics it subscribes to and its own consumer group, and
every message type a principal may send reaches a topic it may write."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from attune_contracts import CATALOG, Topic, all_specs
from attune_contracts.topics import APP, CLI, CONSUMER_GROUPS, OPERATOR, PARTNERS, REPLAYERS
from attune_contracts.trust import senders
from attune_runtime.acls import LAG_MONITOR, Acl, parse, render

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
ACLS = parse((ROOT / "deploy" / "kafka" / "acls.txt").read_text())


def _granted(operation: str, resource: str = "topic") -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for acl in ACLS:
        if acl.operation == operation and acl.resource == resource:
            found[acl.principal].add(acl.name)
    return found


def test_the_acl_file_is_generated_from_the_catalog() -> None:
    text = (ROOT / "deploy" / "kafka" / "acls.txt").read_text()
    assert text == render(), "regenerate it: python -m attune_runtime.acls > deploy/kafka/acls.txt"


def test_only_literal_reads_and_writes_of_named_topics_and_groups() -> None:
    topics = {t.value for t in Topic}
    assert ACLS and len(set(ACLS)) == len(ACLS)
    for acl in ACLS:
        # DESCRIBE (offsets and log ends, no record) for the lag monitor only, and nothing else for it
        assert acl.operation in ("READ", "WRITE") if acl.principal != LAG_MONITOR else acl.operation == "DESCRIBE", acl
        assert "*" not in acl.name and "*" not in acl.principal, acl
        if acl.resource == "topic":
            assert acl.name in topics, acl
        else:
            assert acl.resource == "group" and acl.operation in ("READ", "DESCRIBE"), acl


def test_each_principal_touches_exactly_its_catalog_topics() -> None:
    """Written from the catalog's words, independently of the generator: producers write, consumers read,
    replayers write what has a consumer."""
    expected: dict[str, set[str]] = defaultdict(set)
    for spec in CATALOG.values():
        for principal in (*spec.producers, *spec.consumers):
            expected[principal].add(spec.topic.value)
        if set(spec.consumers) & set(CONSUMER_GROUPS):
            for principal in REPLAYERS:
                expected[principal].add(spec.topic.value)
    touched: dict[str, set[str]] = defaultdict(set)
    for acl in ACLS:
        if acl.resource == "topic" and acl.operation in ("READ", "WRITE"):
            touched[acl.principal].add(acl.name)
    assert touched == expected
    writes = _granted("WRITE")
    for spec in CATALOG.values():
        writers = {p for p, names in writes.items() if spec.topic.value in names}
        assert writers == set(spec.producers) | (set(REPLAYERS) if set(spec.consumers) & set(CONSUMER_GROUPS)
                                                 else set()), spec.topic


def test_each_service_reads_exactly_what_it_subscribes_to_with_its_own_group() -> None:
    from attune_checkins.bootstrap import GROUP_ID as CHECKINS_GROUP
    from attune_checkins.bootstrap import TOPICS as CHECKINS_TOPICS
    from attune_notifier.bootstrap import TOPICS as NOTIFIER_TOPICS
    from attune_notifier.config import NotifierSettings
    from attune_scheduler.config import SchedulerSettings

    reads, groups = _granted("READ"), _granted("READ", "group")
    assert reads["scheduler"] == {Topic.SCHEDULER_COMMANDS.value}  # bootstrap.subscribe(SCHEDULER_COMMANDS)
    assert reads["checkins"] == {t.value for t in CHECKINS_TOPICS}
    assert reads["notifier"] == {t.value for t in NOTIFIER_TOPICS}
    from attune_app.bootstrap import TOPICS as APP_TOPICS
    from attune_app.config import Settings as AppSettings

    assert reads[APP] == {t.value for t in APP_TOPICS}
    assert groups == {"scheduler": {SchedulerSettings.model_fields["group_id"].default},
                      "checkins": {CHECKINS_GROUP},
                      "notifier": {NotifierSettings.model_fields["consumer_group"].default},
                      APP: {AppSettings.model_fields["group_id"].default}}
    assert reads[OPERATOR] == {Topic.DEAD_LETTER.value}
    assert reads[CLI] == {Topic.SCHEDULER_EVENTS.value}  # the answers `attune` waits for
    assert all(not reads[partner] for partner in PARTNERS)


def test_whoever_may_send_a_message_type_may_write_its_topic() -> None:
    writes = _granted("WRITE")
    for spec in all_specs():
        allowed = senders(spec.type)
        assert allowed, f"nobody may send {spec.type}"
        for principal in allowed:
            assert spec.topic.value in writes[principal], f"{principal} may send {spec.type} but not write {spec.topic}"
    # Commands that change who belongs to a household, consent, or erase it: the household's own CLI only.
    # The web app too, for the first three (a person's own consent, the people their invitation lets in).
    for message_type in ("scheduler.register_household", "scheduler.upsert_member", "scheduler.give_consent"):
        assert senders(message_type) == (CLI, APP)
    for message_type in ("scheduler.erase_household", "scheduler.withdraw_consent",
                         "scheduler.revoke_household_credentials"):
        assert senders(message_type) == (CLI,)
    # The app sends exactly its four commands, nothing else its topic carries.
    assert {spec.type for spec in all_specs() if APP in senders(spec.type)} == {
        "scheduler.register_household", "scheduler.upsert_member", "scheduler.schedule_ritual",
        "scheduler.give_consent"}
    assert senders("notifications.notification_requested") == PARTNERS


def test_a_service_writes_only_its_own_topics_and_the_dead_letters() -> None:
    writes = _granted("WRITE")
    for service in CONSUMER_GROUPS:
        owned = {s.topic.value for s in CATALOG.values() if service in s.producers}
        assert writes[service] == owned
        assert Topic.DEAD_LETTER.value in owned
        assert not any(s.topic.value in writes[service] for s in CATALOG.values() if service in s.consumers)


def test_the_lag_monitor_describes_exactly_the_consumed_topics_and_the_services_groups() -> None:
    described = _granted("DESCRIBE")
    groups = _granted("DESCRIBE", "group")
    consumed = {s.topic.value for s in CATALOG.values() if set(s.consumers) & set(CONSUMER_GROUPS)}
    assert described == {LAG_MONITOR: consumed}
    assert groups == {LAG_MONITOR: set(CONSUMER_GROUPS.values())}
    assert not _granted("READ")[LAG_MONITOR] and not _granted("WRITE")[LAG_MONITOR]


def test_the_generator_round_trips() -> None:
    assert parse(render()) == sorted(set(parse(render())))
    assert Acl("x", "READ", "topic", "t").line() == "x READ topic t"


def test_the_cli_connects_as_its_own_principal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from attune_cli.bus import kafka_options

    monkeypatch.setenv("ATTUNE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("ATTUNE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("ATTUNE_KAFKA_SASL_USERNAME", CLI)
    monkeypatch.setenv("ATTUNE_KAFKA_SASL_PASSWORD", "pw")
    options = kafka_options("kafka:9092")
    assert options == {"bootstrap_servers": "kafka:9092", "security_protocol": "SASL_PLAINTEXT",
                       "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": CLI, "sasl_plain_password": "pw"}
    assert CLI in {acl.principal for acl in ACLS}


# ---- the pure rules every consumer applies (attune_contracts.trust, each service's check_members) --------


def test_every_message_type_is_refused_from_any_other_producer_or_topic() -> None:
    import uuid
    from datetime import UTC, datetime

    from attune_contracts import make_envelope
    from attune_contracts.trust import producer_refusal
    from fuzz.samples import build  # a valid payload of any model (tests/ is on sys.path under pytest)

    principals = {acl.principal for acl in ACLS} | {"test", "anyone", "scheduler "}
    for spec in all_specs():
        payload = build(spec.model, datetime.now(UTC))
        for principal in sorted(principals):
            envelope = make_envelope(payload, household_id=uuid.uuid4(), producer=principal)
            refusal = producer_refusal(envelope, spec.topic.value)
            assert (refusal is None) == (principal in senders(spec.type)), (spec.type, principal, refusal)
        envelope = make_envelope(payload, household_id=uuid.uuid4(), producer=senders(spec.type)[0])
        for topic in Topic:
            refusal = producer_refusal(envelope, topic.value)
            assert (refusal is None) == (topic is spec.topic), (spec.type, topic)


def test_scheduler_refuses_consent_and_participants_from_another_household() -> None:
    import uuid
    from datetime import UTC, datetime

    from attune_contracts import make_envelope
    from attune_contracts.messages import GiveConsent, UpsertMember
    from attune_contracts.trust import TrustViolation
    from attune_scheduler.decisions import decide
    from attune_scheduler.model import HouseholdView

    ours, theirs, ana = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    view = HouseholdView(id=ours, household=None, elsewhere={ana: theirs})
    for command, words in ((GiveConsent(ritual_id=uuid.uuid4(), member_id=ana), "does not belong to household"),
                           (UpsertMember(member_id=ana, display_name="Ana"), "already belongs to another household")):
        with pytest.raises(TrustViolation, match=words):
            decide(view, make_envelope(command, household_id=ours, producer=CLI), datetime.now(UTC))
