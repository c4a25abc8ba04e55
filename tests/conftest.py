import os
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from attune_contracts.sealing import DEV_FIELD_KEYS, FieldKeys, installed_field_keys, use_field_keys
from hypothesis import settings

pytest_plugins = ["attune_runtime.testing"]

# CI runs the same generated examples every time (a red CI is then reproducible); developers' runs explore.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """An empty PostgreSQL database on the test server, dropped afterwards. Yields a SQLAlchemy async URL."""
    # Imported here, not at the top: attune_runtime.testing is a plugin, and pytest must import it first.
    from attune_runtime.testing import temporary_database

    async with temporary_database() as url:
        yield url


# ---- the `unit` marker keeps its word ------------------------------------------------------------------
# A unit test runs in this process with no network service: no broker, no PostgreSQL server, no other
# process. SQLite files, in-memory fakes and sinks the test itself listens on are in. Asking for a fixture
# that starts or reaches a service is refused at collection; reaching the PostgreSQL server anyway fails.
SERVICE_FIXTURES = frozenset({"kafka_bootstrap", "pg_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    wrong = []
    for item in items:
        if item.get_closest_marker("unit") is None:
            continue
        needs = SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if needs:
            wrong.append(f"{item.nodeid} is marked unit but asks for {sorted(needs)}: mark it integration")
        elif item.get_closest_marker("integration") is not None:  # `-m unit` would still select it
            wrong.append(f"{item.nodeid} is marked both unit and integration: keep one")
    if wrong:
        raise pytest.UsageError("\n".join(wrong))


def _postgres_address() -> tuple[str, int]:
    from urllib.parse import urlsplit

    from attune_runtime.testing import PG_ADMIN_DSN

    where = urlsplit(PG_ADMIN_DSN)
    return where.hostname or "127.0.0.1", where.port or 5432


@pytest.fixture(autouse=True)
def _unit_tests_reach_no_database_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("unit") is None:
        return
    postgres = _postgres_address()
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(address: object) -> None:
        if isinstance(address, tuple) and (address[0], address[1]) == postgres:
            raise AssertionError(f"{request.node.nodeid} is marked unit but connects to PostgreSQL at {address}")

    def guarded_connect(self: socket.socket, address: object) -> None:
        refuse(address)
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        refuse(address)
        return connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
# Tests run as development does: private fields sealed under the published development field key (a service's
# bootstrap installs the same from its settings). tests/contracts/test_sealing.py takes the keys away.
use_field_keys(FieldKeys.parse(DEV_FIELD_KEYS))


@pytest.fixture(autouse=True)
def _field_keys_restored() -> Iterator[None]:
    """A service built in a test installs its own field keys (its bootstrap does); the next test starts again
    from the development key."""
    before = installed_field_keys()
    yield
    use_field_keys(before)
