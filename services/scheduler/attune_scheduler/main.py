"""The only module that reads the environment."""

from __future__ import annotations

from attune_runtime.logs import configure_logging

from .bootstrap import build_app
from .config import SchedulerSettings

settings = SchedulerSettings()
configure_logging("scheduler", json_lines=settings.log_json, level=settings.log_level)
app = build_app(settings)
