"""Constrained field types shared by every contract.

Bounds exist so one malformed or hostile event cannot make a consumer allocate without limit.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from .sealing import Private

_ZONE_SHAPE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")


def _check_zone(name: str) -> str:
    # ZoneInfo would also accept file paths and "localtime"; an IANA key has a fixed shape.
    if not _ZONE_SHAPE.match(name) or name in {"localtime", "posixrules", "Factory"}:
        raise ValueError(f"{name!r} is not an IANA time zone name (for example 'Europe/London')")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones, e.g. 'America'
        raise ValueError(f"unknown IANA time zone {name!r} (for example 'America/New_York')") from None
    return name


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


IanaZone = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_check_zone)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
# Private text (attune_contracts.sealing): sealed for its household on the wire, plain `str` in a handler.
Name = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True), Private()]
Note = Annotated[str, StringConstraints(max_length=2000), Private()]
PrivateText = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True), Private()]
Body = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
PrivateBody = Annotated[str, StringConstraints(min_length=1, max_length=4000), Private()]
Key = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.\-]*$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
MemberIds = Annotated[list[UUID], Field(min_length=1, max_length=20)]


class Contract(BaseModel):
    """Base of every payload: strict, closed, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
