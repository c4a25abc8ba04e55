import os
from collections.abc import AsyncIterator

import pytest
from attune_runtime.testing import temporary_database
from hypothesis import settings

pytest_plugins = ["attune_runtime.testing"]

# CI runs the same generated examples every time (a red CI is then reproducible); developers' runs explore.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """An empty PostgreSQL database on the test server, dropped afterwards. Yields a SQLAlchemy async URL."""
    async with temporary_database() as url:
        yield url
