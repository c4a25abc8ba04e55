from __future__ import annotations

import io
import json
import logging

import pytest
from attune_runtime.logs import HumanFormatter, JsonFormatter, message_context

pytestmark = [pytest.mark.unit]


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_json_lines_carry_the_message_being_handled() -> None:
    logger, stream = capture(JsonFormatter("notifier"))
    with message_context(event_type="ritual.due", event_id="e-1", correlation_id="c-1", household_id="h-1"):
        logger.info("delivered %s", "push")
    logger.info("idle")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["service"] == "notifier" and first["msg"] == "delivered push"
    assert (first["event_type"], first["event_id"], first["correlation_id"]) == ("ritual.due", "e-1", "c-1")
    assert first["ts"].endswith("Z") and first["level"] == "info"
    assert "event_id" not in second


def test_human_lines_name_the_event_briefly() -> None:
    logger, stream = capture(HumanFormatter("checkins"))
    with message_context(event_type="checkins.submit_checkin", correlation_id="0123456789abcdef"):
        logger.info("recorded")
    assert stream.getvalue().rstrip().endswith("recorded  [checkins.submit_checkin 01234567]")
