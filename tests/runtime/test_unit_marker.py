"""The `unit` marker means what pyproject says: no broker, no PostgreSQL server (tests/conftest.py holds it to it)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import pytest
from conftest import _postgres_address, pytest_collection_modifyitems


@dataclass
class Item:
    nodeid: str
    markers: set[str]
    fixturenames: list[str] = field(default_factory=list)

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


@pytest.mark.unit
def test_a_unit_test_that_reaches_the_postgresql_server_fails_saying_why() -> None:
    with pytest.raises(AssertionError, match="marked unit but connects to PostgreSQL"):
        socket.create_connection(_postgres_address(), timeout=1)


@pytest.mark.unit
def test_a_unit_test_asking_for_the_broker_or_a_database_is_refused_at_collection() -> None:
    fine = [Item("a", {"unit"}, ["tmp_path"]), Item("b", {"integration"}, ["pg_url", "kafka_bootstrap"])]
    pytest_collection_modifyitems(fine)  # type: ignore[arg-type]
    with pytest.raises(pytest.UsageError, match=r"t::x is marked unit but asks for \['kafka_bootstrap'\]"):
        pytest_collection_modifyitems([*fine, Item("t::x", {"unit"}, ["kafka_bootstrap"])])  # type: ignore[list-item]
    with pytest.raises(pytest.UsageError, match="t::y is marked both unit and integration"):
        pytest_collection_modifyitems([Item("t::y", {"unit", "integration"})])  # type: ignore[list-item]


@pytest.mark.integration
def test_other_tests_reach_it_as_before() -> None:
    socket.create_connection(_postgres_address(), timeout=5).close()
