"""Fernet keyrings, written once: check-ins notes, the notifier's channels and params, dead-letter keys.

A keyring setting is comma-separated Fernet keys; the first encrypts, every one decrypts, so a key is rotated by
putting the new one first and keeping the old one behind it until nothing sealed with it is left. Parsing fails
closed: no key, or a value that is not a Fernet key, is refused at start-up with the setting's name and how to
make a key, and the error never quotes the value.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = ["MAKE_FERNET_KEY", "InvalidToken", "Keyring", "parse_keys"]

MAKE_FERNET_KEY = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


def parse_keys(raw: str | Iterable[str | bytes], *, setting: str) -> list[str]:
    """The keys of a keyring setting (a comma-separated string, or keys already split), blanks dropped.
    ValueError naming `setting` if there is none or one is not a Fernet key."""
    items = raw.split(",") if isinstance(raw, str) else raw
    keys = [k.decode() if isinstance(k, bytes) else k for k in items]
    keys = [k.strip() for k in keys if k.strip()]
    if not keys:
        raise ValueError(f"{setting} needs at least one Fernet key; make one with: {MAKE_FERNET_KEY}")
    for key in keys:
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise ValueError(f"{setting} must be Fernet keys (32 url-safe base64 bytes); "
                             f"make one with: {MAKE_FERNET_KEY}") from None
    return keys


class Keyring:
    """The first key encrypts; all of them decrypt. `decrypt` raises InvalidToken for a token none of them opens."""

    def __init__(self, keys: str | Iterable[str | bytes], *, setting: str) -> None:
        self.fernet = MultiFernet([Fernet(k.encode()) for k in parse_keys(keys, setting=setting)])

    def encrypt(self, data: bytes) -> bytes:
        return self.fernet.encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        return self.fernet.decrypt(token)

    def rotate(self, token: bytes) -> bytes:
        """The same data sealed again with the first key (what a re-encryption job writes back)."""
        return self.fernet.rotate(token)
