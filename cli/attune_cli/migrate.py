"""Bring one service's database schema up to date, then exit (the migration Jobs of deploy/k8s).

    python -m attune_cli.migrate scheduler|checkins|notifier|app

It runs the service's own start-up migration (same Alembic scripts, same PostgreSQL advisory lock), so a
Job and instances starting at the same time wait for each other; an instance that starts after the Job
finds the schema at head and does nothing. It reads only ATTUNE_<SERVICE>_DATABASE_URL: the Job needs no
other secret.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


async def _scheduler(engine: AsyncEngine) -> None:
    from attune_scheduler.adapters.sql import SqlStore

    await SqlStore(engine).migrate()


async def _checkins(engine: AsyncEngine) -> None:
    from attune_checkins.adapters.migrate import upgrade

    await upgrade(engine)


async def _notifier(engine: AsyncEngine) -> None:
    from attune_notifier.adapters.sql import migrate

    await migrate(engine)


async def _app(engine: AsyncEngine) -> None:
    from attune_app.adapters.migrate import upgrade  # services/app, the household's web app

    await upgrade(engine)


MIGRATIONS: dict[str, Callable[[AsyncEngine], Awaitable[None]]] = {
    "scheduler": _scheduler,
    "checkins": _checkins,
    "notifier": _notifier,
    "app": _app,
}


async def run(service: str, url: str) -> None:
    # hide_parameters: an error's text never carries bound values.
    engine = create_async_engine(url, hide_parameters=True)
    try:
        await MIGRATIONS[service](engine)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in MIGRATIONS:
        print(f"usage: python -m attune_cli.migrate {'|'.join(MIGRATIONS)}", file=sys.stderr)
        return 2
    service = args[0]
    variable = f"ATTUNE_{service.upper()}_DATABASE_URL"
    url = os.environ.get(variable)
    if not url:
        print(f"set {variable} (the service's database)", file=sys.stderr)
        return 2
    asyncio.run(run(service, url))
    print(f"{service}: schema up to date", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
