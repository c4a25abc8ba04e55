"""The chaos suite's figures, printed in pytest's closing summary (a passing test's output is hidden)."""

from __future__ import annotations

import pytest

FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> list[str]:
    return request.config.stash.setdefault(FIGURES, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    reports = config.stash.get(FIGURES, [])
    if reports:
        terminalreporter.section("chaos figures")
        for report in reports:
            terminalreporter.write_line(report)
