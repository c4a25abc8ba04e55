import os
from collections.abc import Iterator

import pytest
from attune_contracts.sealing import DEV_FIELD_KEYS, FieldKeys, installed_field_keys, use_field_keys
from hypothesis import settings

pytest_plugins = ["attune_runtime.testing"]

# CI runs the same generated examples every time (a red CI is then reproducible); developers' runs explore.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Tests run as development does: private fields sealed under the published development field key (a service's
# bootstrap installs the same from its settings). tests/contracts/test_sealing.py takes the keys away.
use_field_keys(FieldKeys.parse(DEV_FIELD_KEYS))


@pytest.fixture(autouse=True)
def _field_keys_restored() -> Iterator[None]:
    """A service built in a test installs its own field keys (its bootstrap does); the next test starts again
    from the development key."""
    before = installed_field_keys()
    yield
    use_field_keys(before)
