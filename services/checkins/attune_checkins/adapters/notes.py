"""Notes and dreams are encrypted at rest with the notes keyring (attune_runtime.keyring); older keys still read."""

from __future__ import annotations

from collections.abc import Sequence

from attune_runtime.keyring import InvalidToken, Keyring

UNREADABLE = "[note unreadable: encrypted with a key that is no longer configured]"


class NoteCipher:
    def __init__(self, keys: Sequence[bytes | str]) -> None:
        self._keyring = Keyring(keys, setting="ATTUNE_CHECKINS_NOTES_KEY")

    def seal(self, text: str | None) -> bytes | None:
        return None if text is None else self._keyring.encrypt(text.encode())

    def open(self, token: bytes | None) -> str | None:
        if token is None:
            return None
        try:
            return self._keyring.decrypt(bytes(token)).decode()
        except InvalidToken:
            return UNREADABLE
