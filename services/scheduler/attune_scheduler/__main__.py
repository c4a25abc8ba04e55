"""python -m attune_scheduler: the scheduler on uvicorn (port 8101 unless ATTUNE_SCHEDULER_HTTP_PORT says otherwise)."""

from __future__ import annotations

import uvicorn


def main() -> None:
    from .main import app, settings

    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None,
                lifespan="on", access_log=False)


if __name__ == "__main__":
    main()
