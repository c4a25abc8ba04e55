"""`python -m attune_notifier`: the notifier on uvicorn (port 8103 unless ATTUNE_NOTIFIER_HTTP_PORT says otherwise)."""

from __future__ import annotations

import uvicorn


def main() -> None:
    from .main import app, settings

    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
