"""The system under fire: Tansu behind the cutting proxy, a private PostgreSQL, the slow push gateway, and
the services as separate processes (two schedulers, one check-ins, two notifiers), started with the
commands docker-compose.yml gives them, in production mode, each service on its own database.

A supervisor plays the orchestrator: an instance that is down (killed by the suite, or exited on its own)
is started again, with the same port, environment and log file (`restart: unless-stopped`); one that runs
but has not been ready for `STUCK_AFTER_S` since its start is counted as stuck, then killed and started
again, as a liveness probe would (the suite fails on any stuck instance, but goes on to count the rest).
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from attune_contracts.credentials import generate_key_pair
from attune_contracts.sealing import FieldKeys, installed_field_keys, use_field_keys
from attune_notifier.webpush import generate_private_key_text
from attune_runtime.tansu import _answers, binary, free_port
from e2e.stack import compose_command

from .postgres import PrivatePostgres
from .proxy import TcpProxy
from .sink import SlowSink

# A start takes 10-30 s on a loaded machine, and the longest outage the suite causes is about 10 s.
STUCK_AFTER_S = 120.0

INSTANCES = (("scheduler-1", "scheduler"), ("scheduler-2", "scheduler"), ("checkins", "checkins"),
             ("notifier-1", "notifier"), ("notifier-2", "notifier"))

# One per test run, kept across restarts: it wraps the services' dead-letter keys (a secret outside development).
DEAD_LETTER_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()
# The services', the CLI's and this process's ATTUNE_FIELD_KEYS (private fields on the topics): a real key.
FIELD_KEYS = f"chaos:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"


@dataclass
class Instance:
    name: str
    service: str
    port: int
    env: dict[str, str]
    log: Path
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    kills: int = 0
    exits: int = 0  # ended without being killed by the suite
    stuck: int = 0  # ran without ever being ready for STUCK_AFTER_S, then killed by the supervisor
    started_at: float = 0.0
    restart_at: float | None = None
    killed: bool = False
    ready_since: float | None = None  # when /readyz first said 200 after the last start (monotonic)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        self.starts += 1
        self.killed, self.restart_at, self.ready_since = False, None, None
        self.started_at = time.monotonic()
        with open(self.log, "ab") as out:
            out.write(f"\n===== chaos: start #{self.starts} at {time.strftime('%H:%M:%S')} =====\n".encode())
            self.process = await asyncio.create_subprocess_exec(
                *compose_command(self.service), env=self.env, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.log.parent, start_new_session=True)

    async def kill(self, restart_after_s: float, *, count: bool = True) -> None:
        """kill -9, then let the supervisor start it again after `restart_after_s`."""
        if not self.alive:
            return
        assert self.process is not None
        self.kills += count
        self.killed, self.ready_since = True, None
        os.kill(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        self.restart_at = time.monotonic() + restart_after_s

    async def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            self.killed = True
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class Cluster:
    workdir: Path
    sink_delay_s: tuple[float, float] = (0.05, 0.5)
    seed: int = 0
    postgres: PrivatePostgres = field(default_factory=PrivatePostgres)
    broker_port: int = field(default_factory=free_port)
    proxy: TcpProxy = field(init=False)
    sink: SlowSink = field(init=False)
    instances: dict[str, Instance] = field(default_factory=dict)
    link_keys: str = field(default_factory=lambda: f"chaos:{secrets.token_urlsafe(24)}")
    # The cluster's credential keys: the scenario signs, the services verify (a real pair, not the development one).
    credential_keys: tuple[str, str] = field(default_factory=lambda: generate_key_pair("chaos"))
    # Both notifier instances must read each other's channels: one key for the cluster.
    channel_key: str = field(default_factory=lambda: base64.urlsafe_b64encode(os.urandom(32)).decode())
    broker: subprocess.Popen[bytes] | None = None
    _supervisor: asyncio.Task[None] | None = None
    _keys_before: tuple[FieldKeys | None, str | None] | None = None

    def __post_init__(self) -> None:
        self.proxy = TcpProxy(free_port(), self.broker_port)
        self.sink = SlowSink(self.sink_delay_s, seed=self.seed)

    @property
    def bootstrap(self) -> str:
        return self.proxy.address

    def of(self, service: str) -> list[Instance]:
        return [i for i in self.instances.values() if i.service == service]

    def url(self, service: str) -> str:
        return self.of(service)[0].url

    async def start(self) -> Cluster:
        self._keys_before = (installed_field_keys(), os.environ.get("ATTUNE_FIELD_KEYS"))
        use_field_keys(FieldKeys.parse(FIELD_KEYS))
        os.environ["ATTUNE_FIELD_KEYS"] = FIELD_KEYS
        await self.postgres.start()
        databases = {service: await self.postgres.create_database(f"attune_{service}")
                     for service in ("scheduler", "checkins", "notifier")}
        self._start_broker()
        await self.proxy.start()
        await self.sink.start()
        ports = {name: free_port() for name, _ in INSTANCES}
        checkins_url = f"http://127.0.0.1:{ports['checkins']}"
        for name, service in INSTANCES:
            env = self._env(service, ports[name], databases[service], checkins_url)
            self.instances[name] = Instance(name, service, ports[name], env, self.workdir / f"{name}.log")
        # The first instance of each service migrates its database and creates the topics alone.
        firsts = [self.instances[n] for n in ("scheduler-1", "checkins", "notifier-1")]
        for instance in firsts:
            await instance.start()
        await asyncio.gather(*(self.wait_ready(i) for i in firsts))
        rest = [i for i in self.instances.values() if i not in firsts]
        for instance in rest:
            await instance.start()
        await asyncio.gather(*(self.wait_ready(i) for i in rest))
        self._supervisor = asyncio.ensure_future(self._supervise())
        return self

    def _start_broker(self) -> None:
        # Tansu listens on its own port but tells clients to come back through the proxy, so reconnects
        # after a cut go through the proxy as well.
        log = open(self.workdir / "tansu.log", "ab")  # noqa: SIM115 - the broker process keeps it
        self.broker = subprocess.Popen(
            [binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{self.broker_port}",
             "--advertised-listener-url", f"tcp://{self.proxy.address}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")})
        deadline = time.monotonic() + 20
        while not _answers(self.broker_port):
            if self.broker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tansu did not start on {self.broker_port}")
            time.sleep(0.05)

    def _env(self, service: str, port: int, database_url: str, checkins_url: str) -> dict[str, str]:
        p = f"ATTUNE_{service.upper()}_"
        env = {
            **os.environ,
            f"{p}ENVIRONMENT": "production",
            f"{p}KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            f"{p}HTTP_HOST": "127.0.0.1",
            f"{p}HTTP_PORT": str(port),
            f"{p}DATABASE_URL": database_url,
            f"{p}KAFKA_SESSION_TIMEOUT_MS": "6000",
            # The harness drives many households through one operator token: rate limits are tested elsewhere.
            f"{p}HTTP_RATE_PER_S": "10000",
            f"{p}HTTP_RATE_BURST": "100000",
            f"{p}CREDENTIAL_KEYS": self.credential_keys[1],
            f"{p}DEAD_LETTER_KEY": DEAD_LETTER_KEY,
            f"{p}FIELD_KEYS": FIELD_KEYS,
            "PYTHONUNBUFFERED": "1",
        }
        if service == "checkins":
            env |= {
                f"{p}NOTES_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                f"{p}LINK_KEYS": self.link_keys,
                f"{p}LINK_CURRENT_KID": "chaos",
            }
        if service == "notifier":
            env |= {
                f"{p}CHANNEL_KEY": self.channel_key,
                f"{p}VAPID_PRIVATE_KEY": generate_private_key_text(),
                f"{p}LINK_KEYS": self.link_keys,
                f"{p}LINK_KID": "chaos",
                f"{p}CHECKINS_PUBLIC_URL": checkins_url,
                f"{p}DELIVERY_IDLE_POLL_S": "0.25",
            }
        return env

    async def wait_ready(self, instance: Instance, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if instance.process is not None and instance.process.returncode is not None and self._supervisor is None:
                    raise AssertionError(f"{instance.name} exited:\n{instance.tail()}")
                try:
                    if (await client.get(f"{instance.url}/readyz", timeout=3)).status_code == 200:
                        instance.ready_since = instance.ready_since or time.monotonic()
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise AssertionError(f"{instance.name} not ready within {timeout:.0f}s:\n{instance.tail()}")

    async def all_ready(self, timeout: float = 180) -> list[str]:
        """Wait for every instance to be ready; return the names of those that were not in time."""
        answers = await asyncio.gather(*(self.wait_ready(i, timeout) for i in self.instances.values()),
                                       return_exceptions=True)
        return [i.name for i, answer in zip(self.instances.values(), answers, strict=True)
                if isinstance(answer, Exception)]

    async def _supervise(self) -> None:
        async with httpx.AsyncClient() as client:
            while True:
                await self._supervise_once(client)
                await asyncio.sleep(0.25)

    async def _supervise_once(self, client: httpx.AsyncClient) -> None:
        now = time.monotonic()
        for instance in self.instances.values():
            if instance.alive and instance.killed:
                continue  # being killed: the kill -9 is on its way, the process not reaped yet
            if instance.alive:
                if instance.ready_since is None:
                    try:
                        if (await client.get(f"{instance.url}/readyz", timeout=1)).status_code == 200:
                            instance.ready_since = time.monotonic()
                    except httpx.HTTPError:
                        pass
                if instance.ready_since is None and now - instance.started_at > STUCK_AFTER_S:
                    instance.stuck += 1
                    with open(instance.log, "ab") as out:
                        out.write(f"\n===== chaos: stuck, never ready in {STUCK_AFTER_S:.0f}s: killed =====\n".encode())
                    await instance.kill(1.0, count=False)
                continue
            if instance.restart_at is None:  # it ended by itself: an orchestrator restarts it after a second
                instance.exits += 1
                instance.restart_at = now + 1.0
            if now >= instance.restart_at:
                await instance.start()

    async def stop(self) -> None:
        if self._keys_before is not None:
            use_field_keys(self._keys_before[0])
            if self._keys_before[1] is None:
                os.environ.pop("ATTUNE_FIELD_KEYS", None)
            else:
                os.environ["ATTUNE_FIELD_KEYS"] = self._keys_before[1]
            self._keys_before = None
        if self._supervisor is not None:
            self._supervisor.cancel()
            self._supervisor = None
        await asyncio.gather(*(i.stop() for i in self.instances.values()), return_exceptions=True)
        await self.proxy.stop()
        await self.sink.stop()
        if self.broker is not None and self.broker.poll() is None:
            self.broker.terminate()
            try:
                self.broker.wait(5)
            except subprocess.TimeoutExpired:
                self.broker.kill()
                self.broker.wait()
        await self.postgres.destroy()
