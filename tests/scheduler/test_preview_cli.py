"""`attune preview` prints what the firing code fires."""

from __future__ import annotations

import json
from datetime import date

import pytest
import typer
from attune_cli.preview import preview
from attune_scheduler.recurrence import Recurrence, utc_iso
from typer.testing import CliRunner

pytestmark = [pytest.mark.unit]

app = typer.Typer()
app.command()(preview)
runner = CliRunner()


def test_json_across_spring_forward() -> None:
    result = runner.invoke(app, ["--rrule", "FREQ=DAILY", "--time", "02:30", "--tz", "America/New_York",
                                 "--start", "2027-03-13", "--count", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"local": "2027-03-13T02:30:00-05:00", "utc": "2027-03-13T07:30:00Z"},
        {"local": "2027-03-14T03:30:00-04:00", "utc": "2027-03-14T07:30:00Z"},
        {"local": "2027-03-15T02:30:00-04:00", "utc": "2027-03-15T06:30:00Z"},
    ]


def test_same_instants_as_the_firing_code() -> None:
    args = ["--rrule", "FREQ=WEEKLY;BYDAY=SU", "--time", "01:30", "--tz", "Europe/London",
            "--start", "2027-10-01", "--count", "6", "--json"]
    result = runner.invoke(app, args)
    rec = Recurrence.of("FREQ=WEEKLY;BYDAY=SU", "01:30", date(2027, 10, 1), "Europe/London")
    assert [row["utc"] for row in json.loads(result.stdout)] == [utc_iso(i) for i in rec.first(6)]


def test_table_output() -> None:
    result = runner.invoke(app, ["--rrule", "FREQ=WEEKLY;BYDAY=FR", "--time", "19:00", "--tz", "Europe/London",
                                 "--start", "2027-01-01", "--count", "2"])
    assert result.exit_code == 0
    assert "2027-01-01T19:00:00+00:00" in result.stdout and "2027-01-08T19:00:00Z" in result.stdout
    assert "Fri" in result.stdout


@pytest.mark.parametrize(("args", "words"), [
    (["--rrule", "FREQ=SECONDLY", "--time", "02:30", "--tz", "Europe/London"], "too frequent"),
    (["--rrule", "FREQ=DAILY", "--time", "02:30", "--tz", "Mars/Base"], "unknown IANA time zone"),
    (["--rrule", "FREQ=DAILY", "--time", "2:30pm", "--tz", "Europe/London"], "HH:MM"),
    (["--rrule", "FREQ=DAILY", "--time", "02:30", "--tz", "Europe/London", "--start", "soon"], "must be a date"),
])
def test_refusals_exit_2_with_the_reason(args: list[str], words: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert words in result.stderr


def test_wired_into_the_attune_cli() -> None:
    from attune_cli.main import app as attune

    result = runner.invoke(attune, ["preview", "--rrule", "FREQ=DAILY", "--time", "02:30", "--tz",
                                    "America/New_York", "--start", "2027-03-13", "--count", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[1] == {"local": "2027-03-14T03:30:00-04:00", "utc": "2027-03-14T07:30:00Z"}
