"""What a person does in the app, one method each: the store holds the read model and sessions; changes go
out as scheduler commands or calls to the check-ins API, never into another service's database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from attune_contracts.catalog import template as find_template
from attune_contracts.messages import (
    GiveConsent,
    HouseholdKind,
    MemberRole,
    RegisterHousehold,
    ScheduleRitual,
    UpsertMember,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from . import charts
from .adapters.sql import SqlStore
from .ports import CheckinsApi, Clock, Commands, Refused, Unavailable
from .service import (
    RATIO_WINDOW,
    CheckIn,
    Ratio,
    RitualView,
    TodayItem,
    invite_refusal,
    new_token,
    ratio_of,
    ritual_views,
    rrule_for,
    today_items,
    token_hash,
)


@dataclass(frozen=True)
class Policy:
    invite_ttl: timedelta = timedelta(hours=72)
    session_ttl: timedelta = timedelta(days=90)


@dataclass(frozen=True)
class Session:
    household_id: UUID
    member_id: UUID


class AppService:
    def __init__(self, store: SqlStore, commands: Commands, checkins: CheckinsApi, clock: Clock,
                 policy: Policy = Policy()) -> None:
        self.store, self.commands, self.checkins, self.clock, self.policy = store, commands, checkins, clock, policy
        self.trouble: dict[str, datetime] = {}  # what did not answer lately, and since when

    async def _send(self, payload: Any, household_id: UUID) -> UUID:
        return await self._through("the scheduler", self.commands.send(payload, household_id=household_id))

    async def _post(self, household_id: UUID, member_id: UUID, path: str, body: dict[str, Any]) -> None:
        await self._through("check-ins", self.checkins.post(household_id, member_id, path, body))

    async def _through(self, what: str, call: Any) -> Any:
        try:
            result = await call
        except Unavailable:
            self.trouble.setdefault(what, self.clock.now())
            raise
        self.trouble.pop(what, None)
        return result

    def troubled(self) -> list[tuple[str, datetime]]:
        """The services that did not answer the last time the app needed them (pages say so)."""
        return sorted(self.trouble.items())

    # ---- sessions ---------------------------------------------------------------------------------

    async def open_session(self, household_id: UUID, member_id: UUID) -> str:
        token = new_token()
        await self.store.add_session(token_hash(token), household_id, member_id,
                                     self.clock.now() + self.policy.session_ttl)
        return token

    async def session(self, token: str | None) -> Session | None:
        if not token or len(token) > 200:
            return None
        found = await self.store.session(token_hash(token), self.clock.now())
        return Session(*found) if found else None

    async def end_session(self, token: str) -> None:
        await self.store.end_session(token_hash(token))

    # ---- start together ---------------------------------------------------------------------------

    async def start_household(self, *, name: str, kind: str, time_zone: str, your_name: str,
                              role: str) -> tuple[Session, str]:
        """Registers the household and its first member with the scheduler, then opens their session. The
        commands are validated here first (a bad zone never leaves the app)."""
        household_id, member_id = uuid4(), uuid4()
        register = RegisterHousehold(name=name, time_zone=time_zone, kind=HouseholdKind(kind))
        member = UpsertMember(member_id=member_id, display_name=your_name, role=MemberRole(role))
        await self._send(register, household_id)
        await self._send(member, household_id)
        now = self.clock.now()
        await self.store.save_household(household_id, name=register.name, kind=kind, time_zone=time_zone, now=now,
                                        confirmed=False)
        await self.store.save_member(member_id, household_id, display_name=member.display_name, role=role,
                                     confirmed=False)
        return Session(household_id, member_id), await self.open_session(household_id, member_id)

    async def invite(self, session: Session, role: str) -> tuple[str, datetime]:
        """A one-time join link's token (only its hash is stored) and when it expires."""
        MemberRole(role)
        token = new_token()
        expires = self.clock.now() + self.policy.invite_ttl
        await self.store.add_invite(token_hash(token), session.household_id, session.member_id, role, expires)
        return token, expires

    async def invitation(self, token: str) -> tuple[dict[str, Any] | None, str | None, str | None]:
        """The household a join link leads to, the existing member's name for a sign-in link, or why it can't
        be used."""
        found = await self.store.invite(token_hash(token)) if len(token) <= 200 else None
        refusal = invite_refusal(found, self.clock.now())
        if refusal is not None or found is None:
            return None, refusal, None
        name = None
        if found.member_id is not None:
            name = next((m["display_name"] for m in await self.store.members_of(found.household_id)
                         if m["member_id"] == found.member_id), "you")
        return await self.store.household(found.household_id), None, name

    async def sign_in_link(self, household_id: UUID, member_id: UUID) -> str | None:
        """A one-time link that signs an existing member in (the operator's tool; `make run`'s demo). None when
        the app has not heard of that member in that household."""
        if await self.store.member_home(member_id) != household_id:
            return None
        token = new_token()
        await self.store.add_invite(token_hash(token), household_id, member_id, "partner",
                                    self.clock.now() + self.policy.invite_ttl, member_id=member_id)
        return token

    async def join(self, token: str, your_name: str) -> tuple[Session, str] | str:
        """Use a join link (once): adds the person to the household with the scheduler, opens their session.
        Returns the refusal's words when the link can't be used."""
        hashed = token_hash(token) if len(token) <= 200 else ""
        found = await self.store.invite(hashed) if hashed else None
        refusal = invite_refusal(found, self.clock.now())
        if refusal is not None or found is None:
            return refusal or "This invitation link isn't one we know."
        if found.member_id is not None:  # a sign-in link: the member exists, nothing to send
            if not await self.store.use_invite(hashed, self.clock.now()):
                return "This link has already been used. Ask for a new one."
            session = Session(found.household_id, found.member_id)
            return session, await self.open_session(session.household_id, session.member_id)
        member = UpsertMember(member_id=uuid4(), display_name=your_name, role=MemberRole(found.role))
        if not await self.store.use_invite(hashed, self.clock.now()):
            return "This invitation has already been used. Each link lets one person in; ask for a new one."
        try:
            await self._send(member, found.household_id)
        except Unavailable:
            await self.store.release_invite(hashed)  # nothing was sent: the link still works for a retry
            raise
        await self.store.save_member(member.member_id, found.household_id, display_name=member.display_name,
                                     role=found.role, confirmed=False)
        session = Session(found.household_id, member.member_id)
        return session, await self.open_session(session.household_id, session.member_id)

    # ---- rituals ----------------------------------------------------------------------------------

    async def schedule(self, session: Session, *, template_key: str, days: list[str], local_time: str | None,
                       participants: list[UUID]) -> UUID:
        template = find_template(template_key)
        if template is None or template.rhythm is None:
            raise Refused("That ritual isn't one we can schedule.")
        household = await self.store.household(session.household_id)
        if household is None:
            raise Refused("Your household isn't set up yet.")
        known = {m["member_id"] for m in await self.store.members_of(session.household_id)}
        chosen = [m for m in participants if m in known] or sorted(known, key=str)
        if session.member_id not in chosen:
            chosen.append(session.member_id)
        start = self._today(household)
        ritual_id = uuid4()
        command = ScheduleRitual(
            ritual_id=ritual_id, template=template.key, participants=chosen,
            rrule=rrule_for(days, template.rhythm.rrule), local_time=local_time or template.rhythm.local_time,
            start_date=start, reminder_offsets_minutes=list(template.reminder_offsets_minutes),
            catch_up_minutes=template.catch_up_minutes,
        )
        command_id = await self._send(command, session.household_id)
        await self.store.save_ritual(ritual_id, session.household_id, template=template.key, title=template.title,
                                     participants=chosen, rrule=command.rrule, local_time=command.local_time,
                                     sensitive=template.sensitive, state="requested", next_due_at=None,
                                     requested=True, command_id=command_id)
        if template.sensitive:  # asking for it is saying yes to it
            await self._send(GiveConsent(ritual_id=ritual_id, member_id=session.member_id), session.household_id)
        return ritual_id

    def _today(self, household: dict[str, Any]) -> date:
        return self.clock.now().astimezone(ZoneInfo(household["time_zone"])).date()

    async def consent(self, session: Session, ritual_id: UUID) -> bool:
        """Say yes to a sensitive ritual one takes part in; False when it isn't one of this household's."""
        ritual = next((r for r in await self.store.rituals_of(session.household_id) if r.ritual_id == ritual_id),
                      None)
        if ritual is None or session.member_id not in ritual.participants:
            return False
        await self._send(GiveConsent(ritual_id=ritual_id, member_id=session.member_id), session.household_id)
        return True

    async def rituals(self, session: Session) -> list[RitualView]:
        return ritual_views(await self.store.rituals_of(session.household_id), session.member_id)

    # ---- today ------------------------------------------------------------------------------------

    async def today(self, session: Session, conn: AsyncConnection | None = None) -> tuple[
            dict[str, Any] | None, list[dict[str, Any]], list[TodayItem]]:
        """The household, its members and the viewer's items of the household's local today (`conn`: the page's)."""
        now = self.clock.now()
        household, members, occurrences, checkins = await self.store.today_view(
            session.household_id, now - timedelta(hours=36), now + timedelta(hours=36), conn)
        if household is None:
            return None, members, []
        names = {m["member_id"]: m["display_name"] for m in members}
        return household, members, today_items(occurrences, checkins, names, session.member_id, now,
                                               household["time_zone"])

    async def check_in(self, session: Session, occurrence_id: UUID, *, status: str, closeness: int | None,
                       note: str | None) -> bool:
        """Through the check-ins API with the person's own credential; False when the occurrence is not one
        of their household's (or not theirs)."""
        occurrence = await self.store.occurrence(occurrence_id, session.household_id)
        if occurrence is None or session.member_id not in occurrence.participants:
            return False
        body: dict[str, Any] = {"occurrence_id": str(occurrence_id), "member_id": str(session.member_id),
                                "status": status}
        if closeness is not None:
            body["closeness"] = closeness
        if note:
            body["note"] = note
        if status == "snoozed":
            body["snoozed_until"] = (self.clock.now() + timedelta(hours=1)).isoformat()
        await self._post(session.household_id, session.member_id, "checkins", body)
        # Shown at once; the check-ins service's CheckInRecorded says the same a moment later.
        await self.store.save_checkin(CheckIn(occurrence_id, session.member_id, status, closeness),
                                      session.household_id, self.clock.now())
        return True

    async def log_moment(self, session: Session, kind: str, note: str | None) -> None:
        moment_id = uuid4()
        body: dict[str, Any] = {"member_id": str(session.member_id), "kind": kind, "moment_id": str(moment_id)}
        if note:
            body["note"] = note
        await self._post(session.household_id, session.member_id, "moments", body)
        await self.store.save_moment(moment_id, session.household_id, session.member_id, kind, self.clock.now())

    # ---- how we're doing --------------------------------------------------------------------------

    async def progress(self, session: Session) -> tuple[list[dict[str, Any]], Ratio, dict[str, Any] | None]:
        streaks = await self.store.streaks_of(session.household_id)
        # A private ritual's streak is for those who said yes to it (unknown ritual: its template decides).
        known = {r.ritual_id: r for r in await self.store.rituals_of(session.household_id)}

        def private(streak: dict[str, Any]) -> bool:
            ritual = known.get(streak["ritual_id"])
            if ritual is None:
                found = find_template(streak["template"])
                return found is None or found.sensitive
            return ritual.sensitive and session.member_id not in ritual.consented

        streaks = [s for s in streaks if not private(s)]
        kinds = await self.store.moment_kinds_since(session.household_id, self.clock.now() - RATIO_WINDOW)
        return streaks, ratio_of(kinds), await self.store.summary_of(session.household_id)

    async def progress_charts(self, session: Session) -> ProgressCharts | None:
        """The charts of "How we're doing": the viewer's own closeness by day, the household's kind and hard moments
        by week, and the date nights kept in the last four weeks of the date nights the viewer takes part in."""
        household = await self.store.household(session.household_id)
        if household is None:
            return None
        now, zone = self.clock.now(), household["time_zone"]
        today = self._today(household)
        ratings = await self.store.closeness_since(session.household_id, session.member_id,
                                                   now - timedelta(days=charts.CLOSENESS_DAYS + 1))
        moments = await self.store.moments_since(session.household_id,
                                                 now - timedelta(weeks=charts.RATIO_WEEKS, days=1))
        nights = []
        for row in await self.store.date_nights_of(session.household_id):
            if row["participants"] is not None and session.member_id not in row["participants"]:
                continue
            nights.append(charts.DateNights(row["title"] or "Date night", row["kept"], row["expected"],
                                            row["window_weeks"]))
        return ProgressCharts(
            closeness=charts.closeness_chart(charts.closeness_by_day(ratings, zone, today), today),
            moments=charts.moments_chart(charts.moments_by_week(moments, zone, today)),
            date_nights=nights,
        )


@dataclass(frozen=True)
class ProgressCharts:
    closeness: charts.LineChart
    moments: charts.BarChart
    date_nights: list[charts.DateNights]
