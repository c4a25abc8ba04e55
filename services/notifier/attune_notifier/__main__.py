"""`python -m attune_notifier`: the notifier on uvicorn (port 8103 unless ATTUNE_NOTIFIER_HTTP_PORT says otherwise).

ATTUNE_NOTIFIER_WORKERS=N runs N processes (uvicorn's workers, the FastStream/uvicorn convention), each a whole
notifier built from `attune_notifier.main`: one GIL per process, so N cores deliver. They share the HTTP port,
split the topics' partitions in one consumer group, and claim due deliveries from the one table with
FOR UPDATE SKIP LOCKED. Each has its own /metrics registry: a scrape sees one process at a time.
"""

from __future__ import annotations

import uvicorn


def main() -> None:
    from attune_runtime.settings import load_settings

    from .config import NotifierSettings

    settings = load_settings(NotifierSettings)
    if settings.workers > 1:
        uvicorn.run("attune_notifier.main:app", host=settings.http_host, port=settings.http_port,
                    workers=settings.workers, log_config=None, access_log=False)
        return
    from .main import app

    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
