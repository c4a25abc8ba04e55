"""The dead-letter record. It is not an envelope: a message that could not be decoded has no household."""

from __future__ import annotations

import base64
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..types import Reason, UtcDatetime

__all__ = ["DEAD_LETTER_VERSION", "DeadLetter", "SealedDeadLetter"]

DEAD_LETTER_VERSION = 1
Text = Annotated[str, StringConstraints(max_length=500)]


class SealedDeadLetter(BaseModel):
    """The part of a dead letter only its service can open: the value, headers and full reason, AES-256-GCM
    under a data key of (service, household) that the household's erasure destroys."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    service: Text = Field(description="the service whose database holds the data key")
    scope: Annotated[str, StringConstraints(pattern=r"^(service|household:[0-9a-f-]{36})$")] = Field(
        description="whose key: household:<id>, or service (a record with no household)")
    nonce_b64: str
    ciphertext_b64: str


class DeadLetter(BaseModel):
    """A message a consumer gave up on: why, where it came from, and its exact bytes (base64)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    version: int = DEAD_LETTER_VERSION
    reason: Reason
    error_kind: Annotated[str, StringConstraints(pattern=r"^(invalid|rejected|handler_failed)$")] = Field(
        description="invalid: could not be decoded or validated; rejected: valid, but no retry can make it "
        "acceptable (a value out of range, a constraint it violates); handler_failed: a handler bug, retried"
    )
    consumer: Text = Field(description="service and consumer group that gave up")
    source_topic: Text
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key_b64: str | None = None
    value_b64: str
    headers: Annotated[dict[str, str], Field(max_length=100)] = Field(
        default_factory=dict, description="original headers, values base64"
    )
    attempts: int = Field(ge=1)
    failed_at: UtcDatetime
    # Added within v1 (optional): a dead letter must fit under the producer's max_request_size, so a record
    # near Kafka's size limit keeps only its first bytes here; these say what the original was.
    value_length: int | None = Field(default=None, ge=0, description="length of the original value in bytes; "
                                     "None for a tombstone (null value) or a letter written before this field")
    value_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                                     description="sha256 (hex) of the original value")
    truncated: bool = Field(default=False, description="value_b64, key_b64 or headers hold only part of the "
                            "original (too large to dead-letter whole); value_length/value_sha256 describe it")
    # Added within v1 (optional): when set, value_b64 and headers are empty and reason is only what may be read
    # by anyone with the topic; the sealed part holds them, readable through the service until the erasure.
    sealed: SealedDeadLetter | None = Field(default=None, description="value, headers and full reason, encrypted "
                                            "under the household's dead-letter key (crypto-shredded on erasure)")

    @property
    def value(self) -> bytes:
        return base64.b64decode(self.value_b64)

    @property
    def key(self) -> bytes | None:
        return base64.b64decode(self.key_b64) if self.key_b64 is not None else None
