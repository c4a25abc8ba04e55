"""Where the notifier's CPU goes, from py-spy's collapsed stacks (`burst_bench.py --profile FILE`).

    .venv/bin/python bench/profile_split.py FILE [--top 30]

Each sample is one running thread at one instant (py-spy leaves idle threads out). A sample is charged to
the first area found walking from the innermost frame outwards, so Apprise's own code, requests/urllib3,
SQL, Kafka, crypto and asyncio each get what they run themselves, and "ours" only what runs in the
notifier's own frames. Also printed: inclusive shares of the notifier's main steps, and the innermost
frames that take the most samples.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# (area, pattern on a frame's file as py-spy prints it: "pkg/module.py", "socket.py"); the first match walking
# outwards from the innermost frame wins.
AREAS = [
    ("apprise", r"^apprise/"),
    ("http (requests, urllib3, http.client, ssl, socket)",
     r"^(requests|urllib3|http|email|idna|charset_normalizer)/|^(ssl|socket|selectors)\.py"),
    ("sql (sqlalchemy, asyncpg, greenlet)", r"^(sqlalchemy|asyncpg|greenlet)/"),
    ("kafka (aiokafka, faststream, our producer)", r"^(aiokafka|faststream|kafka)/|^attune_runtime/producer"),
    ("crypto (fernet, hmac, itsdangerous)", r"^(cryptography|itsdangerous)/|^(hmac|hashlib|base64)\.py"),
    ("contracts (pydantic, attune_contracts)", r"^(pydantic|pydantic_core|attune_contracts)/"),
    ("json", r"^json/"),
    ("metrics (prometheus)", r"^prometheus_client/"),
    ("logging", r"^logging/"),
    ("uvicorn/starlette/anyio (HTTP API)", r"^(uvicorn|starlette|anyio|fastapi|h11|httptools)/"),
    ("notifier (ours)", r"^(attune_notifier|attune_runtime)/"),
    ("threads (concurrent.futures, threading, queue)", r"^(concurrent/futures/|threading\.py|queue\.py)"),
    ("asyncio", r"^asyncio/"),
    ("stdlib other (uuid, datetime, copy, re, ...)", r"^[a-z_]+\.py|^<frozen"),
]
# A thread blocked in one of these is waiting, not computing (py-spy without --gil may still sample it).
WAITING = re.compile(r"^(SocketIO\.readinto|_worker|EpollSelector\.select|Condition\.wait|Event\.wait|"
                     r"Queue\.get|Thread\.join|lock\.acquire) ")
# Inclusive shares: a sample counts once for each of these it has anywhere on its stack.
STEPS = {
    "the send (AppriseSender.send, its thread: Apprise, requests)": r"apprise_sender\.py|\(apprise/|keepalive\.py",
    "claim_due": r"\bclaim_due\b",
    "load_batch": r"\bload_batch\b",
    "save_many (outcome writer)": r"\bsave_many\b",
    "publishing outcomes (events, producer)": r"\b_publish\b|outcomes\.py|producer\.py",
    "render + links": r"\b(render|_link|tokens)\b",
    "intake (handlers, insert_intents)": r"handlers\.py|insert_intents",
    "plugin warmer": r"warmup\.py",
    "prometheus metrics": r"prometheus_client/",
}
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):\d+\)$")


def parse(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def file_of(frame: str) -> str:
    match = FRAME.match(frame)
    return match.group("file") if match else ""


def area_of(frames: tuple[str, ...]) -> str:
    for frame in reversed(frames):
        file = file_of(frame)
        for area, pattern in AREAS:
            if re.search(pattern, file):
                return area
    return "other (interpreter, unknown)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    stacks = parse(args.file)
    waiting = sum(n for frames, n in stacks.items() if WAITING.match(frames[-1]))
    stacks = Counter({frames: n for frames, n in stacks.items() if not WAITING.match(frames[-1])})
    total = sum(stacks.values()) or 1
    areas: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for frames, n in stacks.items():
        areas[area_of(frames)] += n
        joined = ";".join(frames)
        for step, pattern in STEPS.items():
            if re.search(pattern, joined):
                steps[step] += n
        leaves[frames[-1]] += n
        threads["send threads" if "thread.py" in joined and "_worker" in joined else "event loop and other"] += n
    print(f"{total} samples computing ({waiting} more were threads waiting on a socket, queue or lock: left out)")
    print("\nby area (innermost known frame):")
    for area, n in areas.most_common():
        print(f"  {100 * n / total:5.1f} %  {area}")
    print("\nsteps (inclusive, a sample may count in several):")
    for step, n in steps.most_common():
        print(f"  {100 * n / total:5.1f} %  {step}")
    print("\nthreads:")
    for name, n in threads.most_common():
        print(f"  {100 * n / total:5.1f} %  {name}")
    print(f"\ntop {args.top} innermost frames:")
    for frame, n in leaves.most_common(args.top):
        print(f"  {100 * n / total:5.1f} %  {frame[-150:]}")


if __name__ == "__main__":
    main()
