"""SMS short links: a short random code that the check-ins service resolves to a one-tap link's signed token.

A signed token is ~300 characters, too long for an SMS. The notifier, as it sends an SMS about a ritual,
draws a random code (`new_code`: 12 characters, ~70 bits, no look-alike letters) and publishes a
ShortLinkIssued holding only `code_id(code)` (a hash) and the token sealed with a key derived from the code
(`seal`); the code itself travels only in the SMS. The check-ins service keeps that row until the token's
expiry and answers `/s/{code}` by finding the row by the code's hash and unsealing the token with the code
(`unseal`). So whoever reads the topic or the check-ins database learns nothing usable without the code, only
the check-ins service can resolve a code, and a code is as single-use and as short-lived as its token.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

from cryptography.fernet import Fernet, InvalidToken

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"  # no 0/O, 1/l/I, o
LENGTH = 12
CODE = re.compile(rf"^[{ALPHABET}]{{{LENGTH}}}$")


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def is_code(text: str) -> bool:
    return bool(CODE.match(text))


def code_id(code: str) -> str:
    """What identifies a code in events and storage: a hash, from which the code cannot be read back."""
    return hashlib.sha256(f"attune.short-link.id:{code}".encode()).hexdigest()


def _cipher(code: str) -> Fernet:
    key = hashlib.sha256(f"attune.short-link.key:{code}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(token: str, code: str) -> str:
    return _cipher(code).encrypt(token.encode()).decode()


def unseal(sealed: str, code: str) -> str | None:
    """The token, or None if `sealed` was not sealed with this code."""
    try:
        return _cipher(code).decrypt(sealed.encode()).decode()
    except (InvalidToken, ValueError):
        return None
