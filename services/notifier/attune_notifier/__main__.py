"""`python -m attune_notifier`: the notifier on uvicorn (port 8103 unless ATTUNE_NOTIFIER_HTTP_PORT says otherwise).

ATTUNE_NOTIFIER_WORKERS=N runs N processes (uvicorn's workers, the FastStream/uvicorn convention), each a whole
notifier built from `attune_notifier.main`: one GIL per process, so N cores deliver. They share the HTTP port,
split the topics' partitions in one consumer group, and claim due deliveries from the one table with
FOR UPDATE SKIP LOCKED. Their metrics are added up: prometheus_client's multiprocess mode, in the directory
PROMETHEUS_MULTIPROC_DIR names (emptied of earlier runs' files at start) or, unset, a temporary one removed at
exit; whichever worker answers a scrape of /metrics reports every worker's counts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import uvicorn


def multiprocess_metrics_dir() -> tuple[Path, bool]:
    """Point PROMETHEUS_MULTIPROC_DIR (inherited by the workers) at an empty directory; (it, made here?)."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # a dead run's counts would be added to this one's
            stale.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix="attune-notifier-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path, not given


def main() -> None:
    from attune_runtime.settings import load_settings

    from .config import NotifierSettings

    settings = load_settings(NotifierSettings)
    if settings.workers > 1:
        path, made = multiprocess_metrics_dir()
        try:
            uvicorn.run("attune_notifier.main:app", host=settings.http_host, port=settings.http_port,
                        workers=settings.workers, log_config=None, access_log=False)
        finally:
            if made:
                shutil.rmtree(path, ignore_errors=True)
        return
    from .main import app

    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
