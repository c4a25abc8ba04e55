"""Field-level sealing: private text (names, notes, dreams, titles, message bodies) is unreadable on Kafka.

A contract marks a field private with the `Private` annotation (see `types.Name`, `types.Note`,
`types.PrivateText`). On the wire such a field is `sealed:v1:<kid>:<base64url(nonce | ciphertext)>`:
AES-256-GCM under a key of the household, derived with HKDF-SHA256 from the deployment's field key `kid`
(ATTUNE_<SERVICE>_FIELD_KEYS, the same value in every service, and the CLI's ATTUNE_FIELD_KEYS: the first key
seals, every key opens, so it rotates like the link keys). The
associated data binds the household id and the field's name, so a sealed value copied into another
household's message, or into another field, does not open.

Sealing and opening happen in one place: `Envelope.to_bytes` and `registry.parse`, which hand Pydantic
the keys of the envelope's household through the serialization / validation context. Handlers, use
cases and stores see plain `str`; no call site knows. The process's keys are installed once, by its
bootstrap (`use_field_keys`); a test or a tool may pass its own.

Fail closed: writing a private field to JSON without keys raises `FieldKeysMissing`; a message whose
private field arrives in plaintext, or sealed for another household or field, or under a key this
process does not hold, is refused (the consumer dead-letters it with the reason).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

__all__ = [
    "DEV_FIELD_KEYS", "MAKE_FIELD_KEY", "PREFIX", "SEAL_CONTEXT", "FieldKeys", "FieldKeysMissing", "Private",
    "context_for", "field_keys_in_use", "installed_field_keys", "is_sealed", "private_fields", "use_field_keys",
]

PREFIX = "sealed:v1:"
SEAL_CONTEXT = "attune.fields"  # the key of the Pydantic context entry that carries a `_Household`
NONCE_BYTES = 12
# The longest private text (4,000 characters, up to 16,000 UTF-8 bytes) seals to about 21,400 characters: anything
# longer is refused before it is decoded or decrypted.
MAX_SEALED_CHARS = 32_768
_KID = re.compile(r"^[A-Za-z0-9_\-]{1,32}$")
_SEALED = re.compile(r"^sealed:v1:([A-Za-z0-9_\-]{1,32}):([A-Za-z0-9_\-=]+)$")
# Development only (published, like the development link key): refused outside development.
DEV_FIELD_KEYS = "dev:" + base64.urlsafe_b64encode(hashlib.sha256(b"attune-field-development-only").digest()).decode()
MAKE_FIELD_KEY = "python -c 'import base64,os; print(\"k1:\" + base64.urlsafe_b64encode(os.urandom(32)).decode())'"


class FieldKeysMissing(RuntimeError):
    """A private field was written or read with no field keys: the process's bootstrap installs them."""


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


@lru_cache(maxsize=8192)
def _household_aead(master: bytes, household_id: UUID) -> AESGCM:
    # One derived key per (field key, household); derived once, then cached (HKDF costs more than the AEAD).
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"attune-field-key-v1",
               info=b"household:" + str(household_id).encode()).derive(master)
    return AESGCM(key)


def _aad(household_id: UUID, field: str) -> bytes:
    return f"attune-field-v1|{household_id}|{field}".encode()


class FieldKeys:
    """The deployment's field keys: `current` seals, every one opens. Never printed (no key in its repr)."""

    def __init__(self, keys: Mapping[str, bytes], current: str | None = None) -> None:
        if not keys:
            raise ValueError("at least one field key is needed")
        for kid, key in keys.items():
            if not _KID.match(kid):
                raise ValueError(f"field key id {kid[:40]!r} must be 1-32 letters, digits, '_' or '-'")
            if len(key) != 32:
                raise ValueError(f"field key {kid!r} must be 32 bytes (url-safe base64), not {len(key)}")
        self._keys = dict(keys)
        self.current = current if current is not None else next(iter(keys))
        if self.current not in self._keys:
            raise ValueError(f"the current field key id {self.current!r} is not among the keys")

    @classmethod
    def parse(cls, text: str) -> FieldKeys:
        """'kid:base64,kid2:base64' (the first seals); ValueError saying what is wrong, never the key."""
        keys: dict[str, bytes] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            kid, sep, encoded = part.partition(":")
            if not sep:
                raise ValueError("field keys must look like 'kid:base64key,kid2:base64key'")
            try:
                keys[kid.strip()] = base64.urlsafe_b64decode(encoded.strip().encode())
            except (binascii.Error, ValueError):
                raise ValueError(f"field key {kid.strip()[:40]!r} is not url-safe base64") from None
        return cls(keys)

    @classmethod
    def generate(cls, kid: str = "k1") -> FieldKeys:
        return cls({kid: os.urandom(32)})

    @property
    def kids(self) -> list[str]:
        return list(self._keys)

    def encoded(self) -> list[str]:
        """The keys as they are written in the setting (for comparing with published ones)."""
        return [base64.urlsafe_b64encode(k).decode() for k in self._keys.values()]

    def __repr__(self) -> str:
        return f"FieldKeys(kids={self.kids}, current={self.current!r})"

    def seal(self, household_id: UUID, field: str, text: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = _household_aead(self._keys[self.current], household_id).encrypt(
            nonce, text.encode(), _aad(household_id, field))
        return f"{PREFIX}{self.current}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, household_id: UUID, field: str, value: str) -> str:
        """The plaintext, or ValueError saying why not (never quoting the value)."""
        if len(value) > MAX_SEALED_CHARS:
            raise ValueError(f"private field too long to be a sealed value ({len(value)} characters)")
        match = _SEALED.match(value)
        if match is None:
            raise ValueError("private field not sealed (plaintext is refused on the wire)" if not is_sealed(value)
                             else "private field sealed in a form this version does not read")
        kid, blob = match.groups()
        if kid not in self._keys:
            raise ValueError(f"private field sealed under field key {kid!r}, which this service does not hold "
                             f"(it holds {', '.join(self._keys)})")
        try:
            raw = base64.urlsafe_b64decode(blob.encode())
            plain = _household_aead(self._keys[kid], household_id).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(household_id, field))
            return plain.decode()
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
            raise ValueError("private field does not open: sealed for another household or field, "
                             "or damaged") from None


# ---- the process's keys -------------------------------------------------------------------------

_installed: FieldKeys | None = None


def use_field_keys(keys: FieldKeys | None) -> None:
    """Install the process's field keys (its bootstrap does, from ATTUNE_<SERVICE>_FIELD_KEYS)."""
    global _installed
    _installed = keys


def installed_field_keys() -> FieldKeys | None:
    return _installed


@contextmanager
def field_keys_in_use(keys: FieldKeys | None) -> Iterator[None]:
    """For tests and tools: these keys (or none) for the duration of the block."""
    before = _installed
    use_field_keys(keys)
    try:
        yield
    finally:
        use_field_keys(before)


@dataclass(frozen=True)
class _Household:
    """What a private field needs to seal or open itself: whose message it is, and the keys."""

    keys: FieldKeys | None
    household_id: UUID | None


def context_for(household_id: UUID | None, keys: FieldKeys | None = None) -> dict[str, Any]:
    return {SEAL_CONTEXT: _Household(keys if keys is not None else _installed, household_id)}


def _household_of(info: Any) -> _Household | None:
    context = info.context
    return context.get(SEAL_CONTEXT) if isinstance(context, dict) else None


# ---- the annotation -------------------------------------------------------------------------------

class Private:
    """Marks a text field private: sealed when an envelope is written, opened when one is parsed."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        inner = handler(source)

        def opened(value: Any, validate: core_schema.ValidatorFunctionWrapHandler,
                   info: core_schema.ValidationInfo) -> Any:
            where = _household_of(info)
            if info.mode == "python" and where is None:
                return validate(value)  # built in process (a use case, a test): plain text
            if not isinstance(value, str):
                return validate(value)  # the inner schema says what is wrong with it
            if where is None or where.keys is None:
                raise FieldKeysMissing(f"no field keys to open private field {info.field_name!r}: the process's "
                                       f"bootstrap installs them (attune_contracts.sealing.use_field_keys)")
            if where.household_id is None:
                raise PydanticCustomError("private_field", "private field cannot be opened without a valid "
                                                           "household_id")
            try:
                plain = where.keys.open(where.household_id, info.field_name or "", value)
            except ValueError as exc:
                raise PydanticCustomError("private_field", "{why}", {"why": str(exc)}) from None
            return validate(plain)

        def sealed(model: Any, value: Any, info: Any) -> Any:
            where = _household_of(info)
            if where is None or where.keys is None or where.household_id is None:
                raise FieldKeysMissing(f"private field {info.field_name!r} written to JSON without field keys "
                                       f"and a household (only Envelope.to_bytes writes private fields)")
            return where.keys.seal(where.household_id, info.field_name, value)

        return core_schema.with_info_wrap_validator_function(
            opened, inner, serialization=core_schema.plain_serializer_function_ser_schema(
                sealed, is_field_serializer=True, info_arg=True, when_used="json"))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        plaintext = handler(schema)
        return {"type": "string", "pattern": _SEALED.pattern, "x-attune-private": True,
                "description": "private: AES-256-GCM sealed for the household and this field "
                               "('sealed:v1:<kid>:<base64url(nonce|ciphertext)>'); x-plaintext describes the "
                               "opened text", "x-plaintext": plaintext}

    def __hash__(self) -> int:
        return hash(Private)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Private)


def private_fields(model: type[Any]) -> list[tuple[str, ...]]:
    """Paths of the private fields of a contract model (nested models included), for tests and audits."""
    import typing

    from pydantic import BaseModel

    def walk(annotation: Any, metadata: list[Any], path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        if any(isinstance(m, Private) for m in metadata):
            yield path
            return
        if typing.get_origin(annotation) is typing.Annotated:
            base, *extra = typing.get_args(annotation)
            yield from walk(base, [*metadata, *extra], path)
            return
        for arg in typing.get_args(annotation):
            yield from walk(arg, [], path)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for name, field in annotation.model_fields.items():
                yield from walk(field.annotation, list(field.metadata), (*path, name))

    return sorted(set(walk(model, [], ())))
