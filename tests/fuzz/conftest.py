"""Fuzzing every input: a broker of its own per module, so no other test's consumer reads these records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from attune_runtime.tansu import Tansu


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: hypothesis-generated hostile input on every consumer and endpoint")


@pytest.fixture(scope="module")
def fuzz_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh Tansu for one module: its memory is never freed, and megabyte records add up."""
    broker = Tansu(log_path=Path(tmp_path_factory.mktemp("tansu")) / "tansu.log").start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
