"""Check-ins, one per (occurrence, member), one at a time or in bulk for a consumed batch."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from attune_contracts.messages import CheckInSource, CheckInStatus
from sqlalchemy import func, insert, select, text, update

from ..model import CheckIn
from . import tables as t
from .statements import Repository, chunks


class SqlCheckIns(Repository):
    """Check-ins, one per (occurrence, member); notes sealed with the notes keyring."""

    async def checkin(self, occurrence_id: UUID, member_id: UUID) -> CheckIn | None:
        row = (await self.conn.execute(select(t.checkins).where(
            t.checkins.c.occurrence_id == occurrence_id, t.checkins.c.member_id == member_id,
        ))).mappings().one_or_none()
        return self._checkin(row) if row else None

    async def checkins_for(self, pairs: set[tuple[UUID, UUID]]) -> dict[tuple[UUID, UUID], CheckIn]:
        found: dict[tuple[UUID, UUID], CheckIn] = {}
        for chunk in chunks(list({occ for occ, _ in pairs})):
            rows = (await self.conn.execute(
                select(t.checkins).where(t.checkins.c.occurrence_id.in_(chunk)))).mappings().all()
            for row in rows:
                key = (row["occurrence_id"], row["member_id"])
                if key in pairs:
                    found[key] = self._checkin(row)
        return found

    async def put_checkin(self, ci: CheckIn, *, replace: bool) -> None:
        values = {
            "status": ci.status.value, "snoozed_until": ci.snoozed_until, "closeness": ci.closeness,
            "note_enc": self.cipher.seal(ci.note), "source": ci.source.value, "submitted_at": ci.submitted_at,
            "recorded_at": ci.recorded_at,
        }
        if replace:
            await self.conn.execute(update(t.checkins).where(t.checkins.c.checkin_id == ci.checkin_id).values(**values))
        else:
            await self.conn.execute(insert(t.checkins).values(
                checkin_id=ci.checkin_id, occurrence_id=ci.occurrence_id, member_id=ci.member_id,
                household_id=ci.household_id, ritual_id=ci.ritual_id, template=ci.template,
                scheduled_for=ci.scheduled_for, **values,
            ))

    async def put_checkins(self, new: list[CheckIn], replaced: list[CheckIn]) -> None:
        if new and self.conn.dialect.name == "postgresql":
            # One statement with one array parameter per column, whatever the batch size.
            columns: dict[str, tuple[str, list[Any]]] = {
                "checkin_id": ("uuid", [c.checkin_id for c in new]),
                "occurrence_id": ("uuid", [c.occurrence_id for c in new]),
                "member_id": ("uuid", [c.member_id for c in new]),
                "household_id": ("uuid", [c.household_id for c in new]),
                "ritual_id": ("uuid", [c.ritual_id for c in new]),
                "template": ("text", [c.template for c in new]),
                "scheduled_for": ("timestamptz", [c.scheduled_for for c in new]),
                "status": ("text", [c.status.value for c in new]),
                "snoozed_until": ("timestamptz", [c.snoozed_until for c in new]),
                "closeness": ("int", [c.closeness for c in new]),
                "note_enc": ("bytea", [self.cipher.seal(c.note) for c in new]),
                "source": ("text", [c.source.value for c in new]),
                "submitted_at": ("timestamptz", [c.submitted_at for c in new]),
                "recorded_at": ("timestamptz", [c.recorded_at for c in new]),
            }
            arrays = ", ".join(f"CAST(:{name} AS {kind}[])" for name, (kind, _) in columns.items())
            await self.conn.execute(
                text(f"INSERT INTO checkins ({', '.join(columns)}) SELECT * FROM unnest({arrays})"),  # noqa: S608 - column names and types from the literal dict above; values are bound
                {name: values for name, (_, values) in columns.items()},
            )
        elif new:
            await self.conn.execute(insert(t.checkins), [self._checkin_row(c) for c in new])
        for checkin in replaced:
            await self.put_checkin(checkin, replace=True)

    def _checkin_row(self, ci: CheckIn) -> dict[str, Any]:
        return {
            "checkin_id": ci.checkin_id, "occurrence_id": ci.occurrence_id, "member_id": ci.member_id,
            "household_id": ci.household_id, "ritual_id": ci.ritual_id, "template": ci.template,
            "scheduled_for": ci.scheduled_for, "status": ci.status.value, "snoozed_until": ci.snoozed_until,
            "closeness": ci.closeness, "note_enc": self.cipher.seal(ci.note), "source": ci.source.value,
            "submitted_at": ci.submitted_at, "recorded_at": ci.recorded_at,
        }

    async def history(self, household_id: UUID, *, offset: int, limit: int) -> tuple[list[CheckIn], int]:
        where = t.checkins.c.household_id == household_id
        total = (await self.conn.execute(select(func.count()).select_from(t.checkins).where(where))).scalar_one()
        rows = (await self.conn.execute(
            select(t.checkins).where(where)
            .order_by(t.checkins.c.scheduled_for.desc(), t.checkins.c.checkin_id).offset(offset).limit(limit)
        )).mappings().all()
        return [self._checkin(r) for r in rows], int(total)

    def _checkin(self, row: Any) -> CheckIn:
        return CheckIn(
            checkin_id=row["checkin_id"], occurrence_id=row["occurrence_id"], member_id=row["member_id"],
            household_id=row["household_id"], ritual_id=row["ritual_id"], template=row["template"],
            status=CheckInStatus(row["status"]), snoozed_until=row["snoozed_until"], closeness=row["closeness"],
            note=self.cipher.open(row["note_enc"]), source=CheckInSource(row["source"]),
            submitted_at=row["submitted_at"], recorded_at=row["recorded_at"], scheduled_for=row["scheduled_for"],
        )
