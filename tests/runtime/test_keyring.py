"""attune_runtime.keyring: every Fernet keyring setting parsed one way, failing closed, rotating by order."""

from __future__ import annotations

import pytest
from attune_runtime.keyring import InvalidToken, Keyring, parse_keys
from cryptography.fernet import Fernet

pytestmark = [pytest.mark.unit]


def test_blank_or_broken_keys_are_refused_naming_the_setting_without_quoting_it() -> None:
    for raw in ("", " , ,"):
        with pytest.raises(ValueError, match=r"ATTUNE_X_KEY needs at least one Fernet key.*Fernet\.generate_key"):
            parse_keys(raw, setting="ATTUNE_X_KEY")
    secretish = "not-a-fernet-key-but-maybe-a-password"
    with pytest.raises(ValueError, match="ATTUNE_X_KEY must be Fernet keys") as refused:
        Keyring(f"{Fernet.generate_key().decode()},{secretish}", setting="ATTUNE_X_KEY")
    assert secretish not in str(refused.value)


def test_the_first_key_seals_every_key_opens_and_rotate_moves_to_the_first() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    sealed_before = Keyring([old], setting="K").encrypt(b"before the rotation")
    ring = Keyring(f" {new.decode()} , {old.decode()} ", setting="K")  # the comma-separated setting, spaces and all
    assert ring.decrypt(sealed_before) == b"before the rotation"
    sealed_now = ring.encrypt(b"after")
    assert Fernet(new).decrypt(sealed_now) == b"after"
    with pytest.raises(InvalidToken):
        Fernet(old).decrypt(sealed_now)
    rotated = ring.rotate(sealed_before)
    assert Keyring([new], setting="K").decrypt(rotated) == b"before the rotation"
    with pytest.raises(InvalidToken):
        Keyring([Fernet.generate_key()], setting="K").decrypt(sealed_before)
