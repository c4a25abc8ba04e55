"""`python -m attune_app` runs the household's web app."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    from attune_runtime.settings import load_settings

    from .config import Settings

    if argv:
        raise SystemExit("usage: python -m attune_app")
    settings = load_settings(Settings)
    import uvicorn

    uvicorn.run("attune_app.main:app", host=settings.http_host, port=settings.http_port,
                log_level=settings.log_level.lower(), access_log=False, lifespan="on")


if __name__ == "__main__":
    main(sys.argv[1:])
