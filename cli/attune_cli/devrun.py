"""`make run`: the local broker, every service and the inbox on this machine, with SQLite stores under data/.

Ctrl-C stops everything. Ports can be moved with ATTUNE_DEV_BASE_PORT (default 9092 for the broker,
8100-8103 for the inbox and the services).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from attune_runtime.tansu import Tansu

ROOT = Path.cwd()
DATA = ROOT / "data"


@dataclass
class Service:
    name: str
    module: str
    port: int
    env_prefix: str


SERVICES = [
    Service("scheduler", "attune_scheduler", 8101, "ATTUNE_SCHEDULER_"),
    Service("checkins", "attune_checkins", 8102, "ATTUNE_CHECKINS_"),
    Service("notifier", "attune_notifier", 8103, "ATTUNE_NOTIFIER_"),
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
        "ATTUNE_CHECKINS_LINK_KEYS": links,
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


def wait_healthy(service: Service, process: subprocess.Popen[bytes], timeout: float = 60) -> bool:
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
    DATA.mkdir(exist_ok=True)
    port = int(os.environ.get("ATTUNE_DEV_KAFKA_PORT", "9092"))
    print(f"==> starting the local Kafka broker (Tansu, memory only) on 127.0.0.1:{port}", flush=True)
    broker = Tansu(port, log_path=DATA / "tansu.log").start()
    processes: list[tuple[Service, subprocess.Popen[bytes]]] = []
    try:
        for service in SERVICES:
            if not runnable(service):
                print(f"    ({service.name}: not built yet, skipped)")
                continue
            print(f"==> starting {service.name} on http://127.0.0.1:{service.port}", flush=True)
            process = subprocess.Popen([sys.executable, "-m", service.module],
                                       env=service_env(service, broker.bootstrap))
            processes.append((service, process))
        for service, process in processes:
            if not wait_healthy(service, process):
                raise SystemExit(f"{service.name} did not become healthy; its log is above")
        print("\nAttune is running:")
        for service, _ in processes:
            print(f"  {service.name:<10} http://127.0.0.1:{service.port}/healthz  /readyz  /metrics")
        print(f"  broker     {broker.bootstrap}\nPress Ctrl-C to stop everything.\n", flush=True)
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
        broker.stop()
        print("==> stopped", flush=True)


if __name__ == "__main__":
    main()
