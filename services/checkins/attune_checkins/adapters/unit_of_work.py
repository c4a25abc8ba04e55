"""The SQL unit of work: one transaction, a repository per aggregate on its connection, the events collected."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from ..events import CausedEvents
from ..ports import AlreadyExists
from .aftercare import SqlAfterCare
from .checkins import SqlCheckIns
from .dreams import SqlDreams
from .households import SqlHouseholds, SqlProcessedEvents
from .links import SqlLinks
from .moments import SqlAchievements, SqlMoments, SqlSummaries
from .notes import NoteCipher
from .occurrences import SqlOccurrences
from .outbox import SqlOutbox
from .questions import SqlQuestions
from .rituals import SqlRituals


class SqlUnitOfWork:
    def __init__(self, engine: AsyncEngine, cipher: NoteCipher) -> None:
        self._engine, self._cipher = engine, cipher
        self.collected: list[CausedEvents] = []

    async def __aenter__(self) -> Self:
        self._conn: AsyncConnection = await self._engine.connect()
        try:
            self._tx: AsyncTransaction = await self._conn.begin()
        except BaseException:
            await self._conn.close()
            raise
        conn, cipher = self._conn, self._cipher
        self.households, self.processed = SqlHouseholds(conn, cipher), SqlProcessedEvents(conn, cipher)
        self.occurrences, self.checkins = SqlOccurrences(conn, cipher), SqlCheckIns(conn, cipher)
        self.rituals, self.moments = SqlRituals(conn, cipher), SqlMoments(conn, cipher)
        self.achievements, self.summaries = SqlAchievements(conn, cipher), SqlSummaries(conn, cipher)
        self.links, self.outbox = SqlLinks(conn, cipher), SqlOutbox(conn, cipher)
        self.dreams, self.aftercare = SqlDreams(conn, cipher), SqlAfterCare(conn, cipher)
        self.questions = SqlQuestions(conn, cipher)
        return self

    def collect(self, *events: CausedEvents) -> None:
        self.collected.extend(events)

    async def commit(self) -> None:
        if self._tx.is_active:
            try:
                await self._tx.commit()
            except IntegrityError as exc:
                raise AlreadyExists(str(exc.orig)) from exc

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if exc is None:
                await self.commit()
            elif self._tx.is_active:
                await self._tx.rollback()
        finally:
            await self._conn.close()
        if isinstance(exc, IntegrityError):
            raise AlreadyExists(str(exc.orig)) from exc
