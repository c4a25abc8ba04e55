"""PostgreSQL work of a benchmark, counted from the server's own statistics: run it beside a benchmark and
it samples `pg_stat_database` (commits, rows inserted/updated/deleted, blocks written) and the size of each
database whose name matches `--like` (the benchmarks' throwaway databases: attune_bench_*, attune_burst_*),
once per `--every` seconds, until stopped (Ctrl-C / SIGTERM) or `--seconds` pass. Each sample is one JSON
line on stdout (or `--out`); the last sample of a database is the last seen before the benchmark dropped it.

    .venv/bin/python bench/pg_writes.py --out /tmp/pg.jsonl &  .venv/bin/python bench/burst_bench.py ...
    .venv/bin/python bench/pg_writes.py --summary /tmp/pg.jsonl --since 2026-12-01T00:41:00 [--until ...]

`--summary` prints, per database, the deltas between the first sample at or after `--since` and the last
at or before `--until` (default: its last sample): divide by the events of the run for writes per event.
The statistics collector flushes every ~0.5-1 s, so leave a second either side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
FIELDS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted", "blks_read")
QUERY = f"""SELECT datname, {", ".join(FIELDS)}, pg_database_size(datid) AS bytes
            FROM pg_stat_database WHERE datname LIKE $1"""


async def sample(args: argparse.Namespace) -> None:
    import asyncpg

    out = open(args.out, "a") if args.out else sys.stdout  # noqa: SIM115 - open for the whole run
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    conn = await asyncpg.connect(PG_ADMIN)
    ends = time.monotonic() + args.seconds if args.seconds else None
    try:
        while not stop.is_set() and (ends is None or time.monotonic() < ends):
            at = datetime.now(UTC).isoformat(timespec="seconds")
            try:
                rows = await conn.fetch(QUERY, args.like)
            except asyncpg.PostgresError:  # a database dropped between the scan and its size
                rows = []
            for row in rows:
                out.write(json.dumps({"at": at, **dict(row)}) + "\n")
            out.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.every)
    finally:
        await conn.close()


def summary(path: Path, since: str, until: str | None) -> dict[str, dict[str, int]]:
    first: dict[str, dict] = {}
    last: dict[str, dict] = {}
    biggest: dict[str, int] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row["at"] < since or (until and row["at"] > until):
            continue
        first.setdefault(row["datname"], row)
        last[row["datname"]] = row
        biggest[row["datname"]] = max(biggest.get(row["datname"], 0), row["bytes"])
    return {name: {"from": first[name]["at"], "to": last[name]["at"],
                   **{f: last[name][f] - first[name][f] for f in FIELDS},
                   # The last sample may catch the database while it is being dropped: the largest is its size.
                   "bytes_first": first[name]["bytes"], "bytes_max": biggest[name]} for name in last}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--like", default="attune_b%", help="SQL LIKE pattern of the databases to watch")
    parser.add_argument("--every", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, help="stop after this long (default: until signalled)")
    parser.add_argument("--out", help="append samples to this file (default stdout)")
    parser.add_argument("--summary", metavar="FILE", help="print deltas from a file of samples instead")
    parser.add_argument("--since", default="", help="ISO UTC time, with --summary")
    parser.add_argument("--until", help="ISO UTC time, with --summary")
    options = parser.parse_args()
    if options.summary:
        print(json.dumps(summary(Path(options.summary), options.since, options.until), indent=2))
    else:
        asyncio.run(sample(options))
