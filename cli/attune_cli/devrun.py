"""`make run`: the local broker, every service and the inbox on this machine, with SQLite stores under data/.

Ctrl-C stops everything. Ports can be moved: ATTUNE_DEV_KAFKA_PORT (default 9092) for the broker,
ATTUNE_DEV_BASE_PORT (default 8100) for the inbox, the services on the next three ports, the household's web
app on the one after (8104), SMTP 75 below.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from attune_contracts.credentials import development_signing_key
from attune_runtime.tansu import Tansu

ROOT = Path.cwd()
DATA = ROOT / "data"
BOOTSTRAP = "127.0.0.1:9092"
# The development signing key (attune_contracts.credentials): its credentials are refused outside development.
DEV_SIGNING_KEY = development_signing_key()


@dataclass
class Service:
    name: str
    module: str
    port: int
    env_prefix: str


BASE_PORT = int(os.environ.get("ATTUNE_DEV_BASE_PORT", "8100"))
SERVICES = [
    Service("scheduler", "attune_scheduler", BASE_PORT + 1, "ATTUNE_SCHEDULER_"),
    Service("checkins", "attune_checkins", BASE_PORT + 2, "ATTUNE_CHECKINS_"),
    Service("notifier", "attune_notifier", BASE_PORT + 3, "ATTUNE_NOTIFIER_"),
    Service("app", "attune_app", BASE_PORT + 4, "ATTUNE_APP_"),
]


def runnable(service: Service) -> bool:
    return importlib.util.find_spec(f"{service.module}.__main__") is not None


def dev_link_keys() -> str:
    """One random link key for this data folder, so links minted by the notifier verify at check-ins."""
    path = DATA / "dev-link-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
    return f"dev:{path.read_text().strip()}"


def service_env(service: Service, bootstrap: str) -> dict[str, str]:
    p = service.env_prefix
    links = dev_link_keys()
    env = {
        "ATTUNE_NOTIFIER_CHECKINS_PUBLIC_URL": f"http://127.0.0.1:{BASE_PORT + 2}",
        "ATTUNE_CHECKINS_LINK_KEYS": links,
        "ATTUNE_APP_CHECKINS_URL": f"http://127.0.0.1:{BASE_PORT + 2}",
        "ATTUNE_APP_NOTIFIER_URL": f"http://127.0.0.1:{BASE_PORT + 3}",
        "ATTUNE_CHECKINS_LINK_CURRENT_KID": "dev",
        "ATTUNE_NOTIFIER_LINK_KEYS": links,
        "ATTUNE_NOTIFIER_LINK_KID": "dev",
        **os.environ,
        f"{p}ENVIRONMENT": "development",
        f"{p}KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        f"{p}HTTP_PORT": str(service.port),
        f"{p}DATABASE_URL": f"sqlite+aiosqlite:///{DATA / (service.name + '.db')}",
        f"{p}LOG_JSON": "false",
        "PYTHONUNBUFFERED": "1",
    }
    return env


INBOX_PORT, SMTP_PORT = BASE_PORT, BASE_PORT - 75  # 8100 and 8025 by default
DEMO_ZONE = os.environ.get("ATTUNE_DEMO_TZ", "Europe/London")


def cli(*args: str) -> dict:
    """Run the attune CLI exactly as a person would, with the dev stack's settings."""
    env = {**os.environ, "ATTUNE_KAFKA": BOOTSTRAP, "ATTUNE_SIGNING_KEY": DEV_SIGNING_KEY,
           "ATTUNE_CLI_STATE": str(DATA / "cli-state.json"),
           "ATTUNE_SCHEDULER_URL": f"http://127.0.0.1:{BASE_PORT + 1}",
           "ATTUNE_CHECKINS_URL": f"http://127.0.0.1:{BASE_PORT + 2}",
           "ATTUNE_NOTIFIER_URL": f"http://127.0.0.1:{BASE_PORT + 3}",
           "ATTUNE_APP_URL": f"http://127.0.0.1:{BASE_PORT + 4}"}
    run = subprocess.run([sys.executable, "-m", "attune_cli.main", *args, "--json"], check=False, env=env, capture_output=True,  # noqa: S603 - our own CLI, fixed argv, no shell
                         text=True, timeout=120)
    if run.returncode != 0:
        raise SystemExit(f"demo set-up failed at `attune {' '.join(args)}`:\n{run.stderr or run.stdout}")
    return json.loads(run.stdout)


def create_demo() -> None:
    """A demo household whose first rituals fire within the minute, with channels pointing at the inbox."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    state = DATA / "cli-state.json"
    if not state.exists():
        print(f"==> creating the demo household (two partners, {DEMO_ZONE})", flush=True)
        cli("household", "create", "--name", "Ana & Ben (demo)", "--tz", DEMO_ZONE)
        # Ben reads German (a 24-hour clock); Ana the default English.
        for name, locale in (("Ana", ()), ("Ben", ("--locale", "de-DE"))):
            lower = name.lower()
            cli("member", "add", name, "--push", f"json://127.0.0.1:{INBOX_PORT}/push/{lower}",
                "--email", f"mailto://127.0.0.1:{SMTP_PORT}?from=attune@localhost&to={lower}@localhost&mode=insecure",
                *locale)
    now = datetime.now(ZoneInfo(DEMO_ZONE))
    first = (now + timedelta(seconds=15)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    for template, at in (("evening_attunement", first), ("six_second_kiss_evening", first + timedelta(minutes=1))):
        cli("ritual", "add", template, "--with", "Ana", "--with", "Ben", "--time", at.strftime("%H:%M"),
            "--rrule", "FREQ=DAILY", "--start", at.date().isoformat())
        print(f"    {template} fires at {at.strftime('%H:%M')} ({DEMO_ZONE})", flush=True)


def demo_sign_in_links(app: Service, bootstrap: str) -> dict[str, str]:
    """One-time links that open the demo household in the app as Ana and as Ben (one per person's phone)."""
    state = json.loads((DATA / "cli-state.json").read_text())
    links = {}
    for name, member_id in state.get("members", {}).items():
        run = subprocess.run([sys.executable, "-m", "attune_app.signin", "--household", state["household_id"],  # noqa: S603 - our own module, fixed argv, no shell
                              "--member", member_id, "--wait", "30"], env=service_env(app, bootstrap),
                             capture_output=True, text=True, timeout=60, check=False)
        if run.returncode == 0:
            links[name.capitalize()] = run.stdout.strip()
    return links


def wait_healthy(service: Service, process: subprocess.Popen[bytes], timeout: float = 180) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(f"http://127.0.0.1:{service.port}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def main() -> None:
    global BOOTSTRAP
    DATA.mkdir(exist_ok=True)
    port = int(os.environ.get("ATTUNE_DEV_KAFKA_PORT", "9092"))
    print(f"==> starting the local Kafka broker (Tansu, memory only) on 127.0.0.1:{port}", flush=True)
    broker = Tansu(port, log_path=DATA / "tansu.log").start()
    BOOTSTRAP = broker.bootstrap
    processes: list[tuple[Service, subprocess.Popen[bytes]]] = []
    inbox = subprocess.Popen([sys.executable, "-m", "attune_cli.inbox", "--port", str(INBOX_PORT),  # noqa: S603 - our own inbox module, fixed argv, no shell
                              "--smtp-port", str(SMTP_PORT)])
    try:
        for service in SERVICES:
            if not runnable(service):
                print(f"    ({service.name}: not built yet, skipped)")
                continue
            print(f"==> starting {service.name} on http://127.0.0.1:{service.port}", flush=True)
            process = subprocess.Popen([sys.executable, "-m", service.module],  # noqa: S603 - our own service modules, fixed argv, no shell
                                       env=service_env(service, broker.bootstrap))
            processes.append((service, process))
        for service, process in processes:
            if not wait_healthy(service, process):
                raise SystemExit(f"{service.name} did not become healthy; its log is above")
        demo_links: dict[str, str] = {}
        if len(processes) == len(SERVICES) and os.environ.get("ATTUNE_DEMO", "1") != "0":
            create_demo()
            demo_links = demo_sign_in_links(SERVICES[-1], broker.bootstrap)
        print("\nAttune is running:")
        print(f"  inbox      http://127.0.0.1:{INBOX_PORT}   <- open this: reminders land here within a minute")
        for service, _ in processes:
            if service.name == "app":
                print(f"  app        http://127.0.0.1:{service.port}   <- the household's app: start together here")
                for name, link in demo_links.items():
                    print(f"             {name}'s phone in the demo household: {link}")
            else:
                print(f"  {service.name:<10} http://127.0.0.1:{service.port}/healthz  /readyz  /metrics")
        print(f"  broker     {broker.bootstrap}")
        print("  CLI        ATTUNE_CLI_STATE=data/cli-state.json .venv/bin/attune --help")
        print("Press Ctrl-C to stop everything.\n", flush=True)
        while all(process.poll() is None for _, process in processes):
            time.sleep(0.5)
        dead = [service.name for service, process in processes if process.poll() is not None]
        raise SystemExit(f"{', '.join(dead)} stopped unexpectedly; see the log above")
    except KeyboardInterrupt:
        print("\n==> stopping", flush=True)
    finally:
        for _, process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for _, process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        inbox.terminate()
        inbox.wait(10)
        broker.stop()
        print("==> stopped", flush=True)


if __name__ == "__main__":
    main()
