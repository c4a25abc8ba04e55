"""A private PostgreSQL cluster the chaos suite may stop and start at will.

The machine's PostgreSQL (127.0.0.1:5432) serves every other test, running at the same time: the suite
never touches it. It runs its own cluster instead, from the same server binaries (`initdb`, `pg_ctl`),
in a temporary directory on a free port, with trust authentication on 127.0.0.1 only. PostgreSQL refuses
to run as root, so as root the binaries run as the `postgres` user (runuser) in a directory it owns.
`fsync=off`: the operating system never crashes under this cluster, only the server is stopped. Commits stay
synchronous (`synchronous_commit` on, the default): with it off, the server acknowledged commits whose WAL was still
in its shared memory, and the abrupt stop lost them, which no real server does (a service that had committed a
batch and then its Kafka offsets lost the batch for good).
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import asyncpg
from attune_runtime.tansu import free_port


class PostgresUnavailable(RuntimeError):
    """Why a private cluster cannot run on this machine (the suite skips with this reason)."""


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")


class PrivatePostgres:
    def __init__(self) -> None:
        self.bin = _bindir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="attune-chaos-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.restarts = 0
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and there is no `postgres` user to run the server as") from None
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root without `runuser` to run the server as `postgres`")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def _run(self, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            *self._as, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise PostgresUnavailable(f"{Path(args[0]).name} failed ({process.returncode}): {out.decode()[-800:]}")

    async def start(self) -> PrivatePostgres:
        if not self.data.exists():
            await self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                            "-E", "UTF8", "--no-sync", "--locale=C")
        await self._start()
        return self

    async def _start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off -c max_connections=400")
        await self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                        "-w", "-t", "60", "start")

    async def stop(self, mode: str = "fast") -> None:
        await self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    async def restart(self, outage_s: float) -> None:
        """An abrupt stop (every connection cut, as in a crash or failover), `outage_s` down, then up again."""
        self.restarts += 1
        await self.stop("immediate")
        await asyncio.sleep(outage_s)
        await self._start()

    async def create_database(self, name: str) -> str:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    async def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                await self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
