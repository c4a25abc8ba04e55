"""`python -m attune_app.signin --household ID --member ID`: print a one-time link that signs an existing member
in to the app (a household made with the CLI, like `make run`'s demo). Reads the app's own settings and store;
the member must already be in the app's read model (it arrives as MemberUpserted)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from uuid import UUID


async def _link(household_id: UUID, member_id: UUID, wait_s: float) -> str | None:
    from attune_runtime.settings import load_settings

    from .adapters.migrate import upgrade
    from .adapters.sql import SqlStore, make_engine
    from .config import Settings
    from .ports import SystemClock
    from .usecases import AppService, Policy

    settings = load_settings(Settings)
    store = SqlStore(make_engine(settings.database_url))
    try:
        await upgrade(store.engine)
        service = AppService(store, None, None, SystemClock(), Policy())  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            token = await service.sign_in_link(household_id, member_id)
            if token is not None or loop.time() > deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        await store.close()
    if token is None:
        return None
    base = (settings.public_url or f"http://127.0.0.1:{settings.http_port}").rstrip("/")
    return f"{base}/join/{token}"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m attune_app.signin", description=__doc__)
    parser.add_argument("--household", type=UUID, required=True)
    parser.add_argument("--member", type=UUID, required=True)
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the member to arrive")
    args = parser.parse_args(argv)
    link = asyncio.run(_link(args.household, args.member, args.wait))
    if link is None:
        raise SystemExit("that member of that household is not known to the app (yet): is the app running and "
                         "has the scheduler registered them?")
    print(link)


if __name__ == "__main__":
    main(sys.argv[1:])
