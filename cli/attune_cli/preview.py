"""`attune preview`: the occurrences a rule would fire, computed by the scheduler's own time core."""

from __future__ import annotations

import json
from datetime import date

import typer
from attune_scheduler.recurrence import Recurrence, RecurrenceError, utc_iso
from rich.console import Console
from rich.table import Table


def preview(
    rrule: str = typer.Option(..., "--rrule", help="RFC 5545 RRULE without DTSTART, e.g. 'FREQ=WEEKLY;BYDAY=FR'"),
    time: str = typer.Option(..., "--time", help="local start time HH:MM, e.g. 20:30"),
    tz: str = typer.Option(..., "--tz", help="IANA time zone, e.g. Europe/London"),
    start: str = typer.Option(None, "--start", help="first day, YYYY-MM-DD (default: today)"),
    count: int = typer.Option(10, "--count", min=1, max=1000, help="how many occurrences"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON list of {local, utc}"),
) -> None:
    """Show when a ritual would fire, exactly as the scheduler would fire it (DST included)."""
    err = Console(stderr=True)
    try:
        first_day = date.fromisoformat(start) if start else date.today()
    except ValueError:
        err.print(f"[bold red]error:[/] --start {start!r} must be a date like 2027-03-13")
        raise typer.Exit(2) from None
    try:
        rec = Recurrence.of(rrule, time, first_day, tz)
    except RecurrenceError as exc:
        err.print(f"[bold red]error:[/] {exc.reason}")
        raise typer.Exit(2) from None
    rows = [{"local": rec.to_local(i).isoformat(), "utc": utc_iso(i)} for i in rec.first(count)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{rrule} at {time} in {tz}")
    table.add_column("#", justify="right")
    table.add_column("local")
    table.add_column("weekday")
    table.add_column("UTC")
    for n, (row, instant) in enumerate(zip(rows, rec.first(count), strict=True), 1):
        table.add_row(str(n), row["local"], rec.to_local(instant).strftime("%a"), row["utc"])
    Console().print(table)
