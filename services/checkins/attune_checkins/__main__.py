"""`python -m attune_checkins` runs the service; `python -m attune_checkins token <household id>` prints
that household's API token (an HMAC of its id with ATTUNE_CHECKINS_HOUSEHOLD_TOKEN_SECRET)."""

from __future__ import annotations

import sys
from uuid import UUID


def main(argv: list[str]) -> None:
    from attune_runtime.settings import load_settings

    from .config import Settings

    settings = load_settings(Settings)
    if argv[:1] == ["token"]:
        from .http import household_token

        if len(argv) != 2:
            raise SystemExit("usage: python -m attune_checkins token <household id>")
        try:
            household = UUID(argv[1])
        except ValueError:
            raise SystemExit(f"{argv[1]!r} is not a household id (a UUID)") from None
        print(household_token(settings.token_secret(), household))
        return
    if argv:
        raise SystemExit("usage: python -m attune_checkins [token <household id>]")
    import uvicorn

    uvicorn.run("attune_checkins.main:app", host=settings.http_host, port=settings.http_port,
                log_level=settings.log_level.lower(), access_log=False, lifespan="on")


if __name__ == "__main__":
    main(sys.argv[1:])
