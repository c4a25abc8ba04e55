"""The whole system as separate processes: a fresh Tansu broker, the three services started with the very
commands docker-compose.yml gives them (in production mode, each on its own PostgreSQL database), and the
local inbox as the push and SMTP sink."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from attune_contracts.credentials import generate_key_pair
from attune_contracts.sealing import FieldKeys, installed_field_keys, use_field_keys
from attune_notifier.webpush import generate_private_key_text
from attune_runtime.tansu import Tansu, free_port
from attune_runtime.testing import PG_ADMIN_DSN, create_database, drop_database

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("scheduler", "checkins", "notifier")

# One per test run, kept across restarts: it wraps the services' dead-letter keys (a secret outside development).
DEAD_LETTER_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()


def compose_command(service: str) -> list[str]:
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][service]["command"]
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


@dataclass
class Running:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Stack:
    workdir: Path
    broker: Tansu = field(default_factory=Tansu)
    services: dict[str, Running] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)
    inbox_port: int = field(default_factory=free_port)
    smtp_port: int = field(default_factory=free_port)
    inbox: subprocess.Popen[bytes] | None = None
    link_keys: str = field(default_factory=lambda: f"e2e:{secrets.token_urlsafe(24)}")
    # (signing key for the CLI, public key for the services): a real pair, as in production.
    credential_keys: tuple[str, str] = field(default_factory=lambda: generate_key_pair("e2e"))
    # ATTUNE_FIELD_KEYS of the three services, the CLI and this test process (it reads their topics): a real key.
    field_keys: str = field(default_factory=lambda: f"e2e:{base64.urlsafe_b64encode(os.urandom(32)).decode()}")
    _keys_before: tuple[FieldKeys | None, str | None] | None = None

    @property
    def inbox_url(self) -> str:
        return f"http://127.0.0.1:{self.inbox_port}"

    def env_for(self, name: str, port: int, database: str) -> dict[str, str]:
        p = f"ATTUNE_{name.upper()}_"
        pg = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        env = {
            **os.environ,
            f"{p}ENVIRONMENT": "production",
            f"{p}KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
            f"{p}HTTP_HOST": "127.0.0.1",
            f"{p}HTTP_PORT": str(port),
            f"{p}DATABASE_URL": f"{pg}/{database}",
            f"{p}KAFKA_SESSION_TIMEOUT_MS": "6000",
            # The harness drives many households through one operator token: rate limits are tested elsewhere.
            f"{p}HTTP_RATE_PER_S": "10000",
            f"{p}HTTP_RATE_BURST": "100000",
            "PYTHONUNBUFFERED": "1",
            # The three services verify the same credentials (the household export on each).
            f"{p}CREDENTIAL_KEYS": self.credential_keys[1],
            f"{p}DEAD_LETTER_KEY": DEAD_LETTER_KEY,
            f"{p}FIELD_KEYS": self.field_keys,
        }
        if name == "checkins":
            env |= {
                f"{p}NOTES_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                f"{p}LINK_KEYS": self.link_keys,
                f"{p}LINK_CURRENT_KID": "e2e",
            }
        if name == "notifier":
            env |= {
                f"{p}CHANNEL_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                f"{p}VAPID_PRIVATE_KEY": generate_private_key_text(),
                f"{p}LINK_KEYS": self.link_keys,
                f"{p}LINK_KID": "e2e",
                f"{p}CHECKINS_PUBLIC_URL": f"http://127.0.0.1:{self.services['checkins'].port}"
                if "checkins" in self.services else "",
            }
        return env

    async def _database(self) -> str:
        name = (await create_database("attune_e2e")).rsplit("/", 1)[1]
        self.databases.append(name)
        return name

    def use_its_field_keys(self) -> None:
        """This test process, and the CLI processes it starts, seal and open private fields as the services do
        (until stop)."""
        self._keys_before = (installed_field_keys(), os.environ.get("ATTUNE_FIELD_KEYS"))
        use_field_keys(FieldKeys.parse(self.field_keys))
        os.environ["ATTUNE_FIELD_KEYS"] = self.field_keys

    async def start(self) -> Stack:
        self.use_its_field_keys()
        self.broker.log_path = self.workdir / "tansu.log"
        self.broker.start()
        self.inbox = subprocess.Popen(
            [sys.executable, "-m", "attune_cli.inbox", "--port", str(self.inbox_port), "--smtp-port",
             str(self.smtp_port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for name in SERVICES:
            port = free_port()
            log = self.workdir / f"{name}.log"
            process = subprocess.Popen(compose_command(name), env=self.env_for(name, port, await self._database()),
                                       stdout=open(log, "wb"),  # noqa: SIM115 - the child holds it
                                       stderr=subprocess.STDOUT, cwd=self.workdir)
            self.services[name] = Running(name, port, process, log)
        for running in self.services.values():
            await self.wait_ready(running)
        return self

    async def wait_ready(self, running: Running, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if running.process.poll() is not None:
                    raise AssertionError(f"{running.name} exited:\n{running.log.read_text()[-4000:]}")
                try:
                    if (await client.get(f"{running.url}/readyz", timeout=2)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"{running.name} not ready in {timeout}s:\n{running.log.read_text()[-4000:]}")

    async def inbox_messages(self) -> list[dict]:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{self.inbox_url}/api/messages", timeout=5)).json()["messages"]

    def logs(self) -> str:
        return "\n".join(f"--- {r.name}\n{r.log.read_text()[-3000:]}" for r in self.services.values())

    async def stop(self) -> None:
        for running in self.services.values():
            if running.process.poll() is None:
                running.process.terminate()
        for running in self.services.values():
            try:
                running.process.wait(15)
            except subprocess.TimeoutExpired:
                running.process.kill()
        if self.inbox:
            self.inbox.terminate()
            self.inbox.wait(10)
        self.broker.stop()
        if self._keys_before is not None:
            keys, env = self._keys_before
            use_field_keys(keys)
            if env is None:
                os.environ.pop("ATTUNE_FIELD_KEYS", None)
            else:
                os.environ["ATTUNE_FIELD_KEYS"] = env
        for name in self.databases:
            await drop_database(name)
