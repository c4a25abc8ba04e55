"""`make bench`: every benchmark, one after the other, each with the arguments its README section used.

Numbers go to stdout (and bench/results/ where a benchmark writes them); write what you measured, with the
machine and its load, into bench/README.md. Run on a quiet machine: the benchmarks share its CPUs with
PostgreSQL and the broker.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

RUNS = [
    ("scheduler", ["scheduler_bench.py", "--rituals", "100000", "--active", "1000000"]),
    ("checkins", ["checkins_bench.py", "--checkins", "20000", "--batch", "500"]),
    ("notifier", ["notifier_bench.py", "--notifications", "3000", "--members", "300", "--rate", "200",
                  "--seconds", "15"]),
    # The 19:00 burst: its README section says which sizes were run; 10,000 households is the target.
    ("burst", ["burst_bench.py", "--households", "1000"]),
    # The web app's today page over 1,000 households' sessions (issue 14: p99 < 100 ms).
    ("app", ["app_bench.py", "--households", "1000", "--requests", "3000", "--concurrency", "8"]),
    # The size, in the best shape measured (bench/README.md): ~10 min; the naive gather is cut to 2,000
    # sends (at ~5/s its 20,000 would take over an hour).
    ("burst10k", ["burst_bench.py", "--households", "10000", "--schedulers", "2", "--notifier-workers", "2",
                  "--naive-sends", "2000"]),
]


def main() -> None:
    only = set(sys.argv[1:])
    failed = []
    for name, args in RUNS:
        if only and name not in only:
            continue
        print(f"\n==> {name}: python bench/{' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]], check=False).returncode != 0:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
