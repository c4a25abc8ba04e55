pytest_plugins = ["attune_runtime.testing"]
