"""A dead letter always fits under the producer's max_request_size, whatever the record was."""

from __future__ import annotations

import hashlib

import pytest
from attune_contracts.messages import DeadLetter
from attune_runtime.consumer import KEEP_KEY_BYTES, KEEP_VALUE_BYTES, dead_letter_for
from attune_runtime.testing import KafkaRecord

pytestmark = [pytest.mark.unit]

MAX_REQUEST_SIZE = 1024 * 1024  # aiokafka's default for the producer that publishes dead letters


def letter(record: KafkaRecord) -> DeadLetter:
    built = dead_letter_for(record, reason="not JSON", kind="invalid", consumer="test/g", attempts=1)
    assert len(built.model_dump_json()) < MAX_REQUEST_SIZE - 64 * 1024  # room for Kafka's own overhead
    return DeadLetter.model_validate_json(built.model_dump_json())  # and it reads back


def test_a_record_that_is_large_everywhere_is_cut_to_fit_and_says_what_it_was() -> None:
    value, key = b"v" * 1_000_000, b"k" * 1_000_000
    headers = tuple((f"h{n}", b"x" * 20_000) for n in range(50))
    cut = letter(KafkaRecord(value=value, offset=7, key=key, headers=headers))
    assert cut.truncated is True
    assert cut.value == value[:KEEP_VALUE_BYTES]
    assert cut.value_length == 1_000_000 and cut.value_sha256 == hashlib.sha256(value).hexdigest()
    assert cut.key == key[:KEEP_KEY_BYTES]
    assert 0 < len(cut.headers) < 50


def test_more_headers_than_a_dead_letter_holds() -> None:
    cut = letter(KafkaRecord(value=b"{}", offset=1, headers=tuple((f"h{n}", b"1") for n in range(150))))
    assert len(cut.headers) == 100 and cut.truncated is True


def test_a_tombstone_and_a_null_header_value() -> None:
    tomb = letter(KafkaRecord(value=None, offset=3, headers=(("h", None),)))  # type: ignore[arg-type]
    assert tomb.value_b64 == "" and tomb.value_length is None and tomb.value_sha256 is None
    assert tomb.headers == {"h": ""} and tomb.truncated is False


def test_a_small_record_is_kept_whole() -> None:
    whole = letter(KafkaRecord(value=b'{"a": 1}', offset=0, key=b"k", headers=(("h", b"\xff"),)))
    assert whole.value == b'{"a": 1}' and whole.key == b"k" and whole.headers == {"h": "/w=="}
    assert whole.truncated is False and whole.value_length == 8
