"""/today is the page the whole household opens most (issue 14: p99 < 100 ms): it reads what it shows on one
connection besides the session's, and the after-care reads nothing for someone it can never show to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from .conftest import Harness, start_household

pytestmark = [pytest.mark.unit]


@contextmanager
def recorded(h: Harness) -> Iterator[dict[str, list[str]]]:
    """Each pooled connection checkout and each SQL statement while the block runs."""
    engine = h.parts.store.engine.sync_engine
    seen: dict[str, list[str]] = {"checkouts": [], "statements": []}

    def checkout(*_: Any) -> None:
        seen["checkouts"].append("checkout")

    def statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen["statements"].append(sql)

    event.listen(engine.pool, "checkout", checkout)
    event.listen(engine, "before_cursor_execute", statement)
    try:
        yield seen
    finally:
        event.remove(engine.pool, "checkout", checkout)
        event.remove(engine, "before_cursor_execute", statement)


async def test_today_reads_on_the_sessions_connection_and_one_more(harness: Harness) -> None:
    browser = harness.browser()
    assert (await start_household(browser)).status_code == 303
    with recorded(harness) as seen:
        page = await browser.get("/today")
    assert page.status_code == 200
    assert len(seen["checkouts"]) == 2, seen  # the session's, then the page's (6 before: each new part had its own)
    statements = " ".join(seen["statements"])
    for table in ("households", "members", "occurrences", "aftercare_consents", "aftercare_moments", "questions"):
        assert f"FROM {table}" in statements, table


async def test_a_parent_and_child_households_today_never_reads_the_after_care(harness: Harness) -> None:
    browser = harness.browser()
    assert (await start_household(browser, kind="family")).status_code == 303
    with recorded(harness) as seen:
        page = await browser.get("/today")
    assert page.status_code == 200
    assert not [s for s in seen["statements"] if "aftercare" in s], seen["statements"]
