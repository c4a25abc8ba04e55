import os

from hypothesis import settings

pytest_plugins = ["attune_runtime.testing"]

# CI runs the same generated examples every time (a red CI is then reproducible); developers' runs explore.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
