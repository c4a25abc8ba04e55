"""The only module that reads the environment."""

from __future__ import annotations

from attune_runtime.logs import configure_logging
from attune_runtime.settings import load_settings

from .bootstrap import build_app
from .config import Settings

settings = load_settings(Settings)
configure_logging("app", json_lines=settings.log_json, level=settings.log_level)
app = build_app(settings)
