"""Whose fault is it: the table of failures the consumers meet, classified (attune_runtime.faults)."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import json
import sqlite3

import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from aiokafka import errors as kafka_errors
from asyncpg import exceptions as pg
from attune_contracts.messages import RegisterHousehold
from attune_runtime.faults import Fault, InfrastructureError, PermanentError, classify, describe
from sqlalchemy.ext.asyncio import create_async_engine


def wrapped(cls: type[sa_exc.DBAPIError], orig: BaseException) -> sa_exc.DBAPIError:
    """What SQLAlchemy raises around a driver error: statement and parameters in its text, driver error in orig."""
    return cls("INSERT INTO channels (url) VALUES ($1)", ("json://secret-token@host",), orig)


def raised(fn) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the point is to get it
        return exc
    raise AssertionError("did not raise")


def chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


INFRASTRUCTURE = {
    "connection refused": ConnectionRefusedError(111, "Connect call failed"),
    "connection reset": ConnectionResetError(104, "reset by peer"),
    "timeout": TimeoutError(),
    "disk full": OSError(errno.ENOSPC, "No space left on device"),
    "SQLAlchemy pool timeout": sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
    "SQLAlchemy disconnection": sa_exc.DisconnectionError("connection invalidated"),
    "asyncpg connection gone": wrapped(sa_exc.InterfaceError, pg.ConnectionDoesNotExistError("connection was closed")),
    "asyncpg cannot connect now": wrapped(sa_exc.OperationalError, pg.CannotConnectNowError("the database system "
                                                                                           "is starting up")),
    "asyncpg admin shutdown": wrapped(sa_exc.DBAPIError, pg.AdminShutdownError("terminating connection")),
    "asyncpg too many connections": wrapped(sa_exc.OperationalError, pg.TooManyConnectionsError("too many clients")),
    "asyncpg disk full": wrapped(sa_exc.OperationalError, pg.DiskFullError("could not extend file")),
    "asyncpg error behind the adapter": wrapped(
        sa_exc.OperationalError, chained(Exception("adapted"), pg.PostgresConnectionError("lost"))),
    "sqlite locked": wrapped(sa_exc.OperationalError, sqlite3.OperationalError("database is locked")),
    "sqlite disk full": wrapped(sa_exc.OperationalError, sqlite3.OperationalError("database or disk is full")),
    "kafka connection": kafka_errors.KafkaConnectionError("no connection"),
    "kafka timeout": kafka_errors.KafkaTimeoutError(),
    "kafka node not ready": kafka_errors.NodeNotReadyError(),
    "kafka request timed out": kafka_errors.RequestTimedOutError(),
    "kafka leader moving (retriable)": kafka_errors.NotLeaderForPartitionError(),
    "raised by the handler": InfrastructureError("gateway down", dependency="push gateway"),
    "wrapped by the handler": chained(RuntimeError("could not save"), ConnectionRefusedError(111, "refused")),
    "a task group with one outage": ExceptionGroup("two", [KeyError("x"), ConnectionResetError()]),
}

PERMANENT = {
    "PermanentError": PermanentError("start date 9999-12-31 is too far"),
    "SQLAlchemy DataError": wrapped(sa_exc.DataError, pg.DataError("value too long for type character varying")),
    "SQLAlchemy IntegrityError": wrapped(sa_exc.IntegrityError, pg.UniqueViolationError("duplicate key")),
    "NUL byte on PostgreSQL": wrapped(sa_exc.DBAPIError, pg.CharacterNotInRepertoireError(
        'invalid byte sequence for encoding "UTF8": 0x00')),
    "untranslatable character": wrapped(sa_exc.DBAPIError, pg.UntranslatableCharacterError("\\u0000")),
    "sqlite constraint": wrapped(sa_exc.IntegrityError, sqlite3.IntegrityError("UNIQUE constraint failed")),
    "pydantic": raised(lambda: RegisterHousehold(name="", time_zone="Mars/Olympus")),
    "datetime past 9999": raised(lambda: dt.datetime(9999, 12, 31, 23, tzinfo=dt.UTC) + dt.timedelta(days=2)),
    "year out of range": raised(lambda: dt.date(1, 1, 1).replace(year=10_000)),
    "int too big for SQLite": OverflowError("Python int too large to convert to SQLite INTEGER"),
    "surrogate the database cannot encode": raised(lambda: "\ud800".encode()),
}

BUGS = {
    "KeyError": KeyError("member_id"),
    "AttributeError": AttributeError("'NoneType' object has no attribute 'id'"),
    "RuntimeError": RuntimeError("unexpected state"),
    "a ValueError that is not about a range": ValueError("too many values to unpack"),
    "sqlite: no such table": wrapped(sa_exc.OperationalError, sqlite3.OperationalError("no such table: rituals")),
    "sqlite: a column whose name sounds like an outage": wrapped(
        sa_exc.OperationalError, sqlite3.OperationalError("no such column: closed_at")),
    "sqlite: a table whose name sounds like an outage": wrapped(
        sa_exc.OperationalError, sqlite3.OperationalError("no such table: connection")),
    "SQL syntax": wrapped(sa_exc.ProgrammingError, pg.PostgresSyntaxError('syntax error at or near ":"')),
    "kafka: not retriable": kafka_errors.InvalidTopicError(),
}


@pytest.mark.unit
@pytest.mark.parametrize("exc", list(INFRASTRUCTURE.values()), ids=list(INFRASTRUCTURE))
def test_infrastructure_failures_are_not_the_messages_fault(exc: BaseException) -> None:
    assert classify(exc).fault is Fault.INFRASTRUCTURE


@pytest.mark.unit
@pytest.mark.parametrize("exc", list(PERMANENT.values()), ids=list(PERMANENT))
def test_failures_no_retry_can_fix_are_permanent(exc: BaseException) -> None:
    assert classify(exc).fault is Fault.PERMANENT


@pytest.mark.unit
@pytest.mark.parametrize("exc", list(BUGS.values()), ids=list(BUGS))
def test_everything_else_is_a_bug(exc: BaseException) -> None:
    assert classify(exc).fault is Fault.BUG


@pytest.mark.unit
def test_infrastructure_says_what_it_waits_for() -> None:
    assert classify(INFRASTRUCTURE["SQLAlchemy pool timeout"]).dependency == "database"
    assert classify(INFRASTRUCTURE["sqlite locked"]).dependency == "database"
    assert classify(INFRASTRUCTURE["disk full"]).dependency == "disk"
    assert classify(INFRASTRUCTURE["asyncpg disk full"]).dependency == "disk"
    assert classify(INFRASTRUCTURE["kafka node not ready"]).dependency == "kafka"
    assert classify(INFRASTRUCTURE["raised by the handler"]).dependency == "push gateway"


@pytest.mark.unit
def test_reasons_name_the_drivers_error_and_never_the_statements_parameters() -> None:
    nul = describe(PERMANENT["NUL byte on PostgreSQL"])
    assert nul == 'CharacterNotInRepertoireError: invalid byte sequence for encoding "UTF8": 0x00'
    assert "secret" not in describe(PERMANENT["SQLAlchemy IntegrityError"])
    assert describe(PermanentError("start date 9999-12-31 is too far")) == "start date 9999-12-31 is too far"
    assert describe(PERMANENT["pydantic"]).startswith("ValidationError: name: String should have at least 1")


@pytest.mark.integration
async def test_real_postgresql_errors(pg_url: str) -> None:
    """The same verdicts for what asyncpg and SQLAlchemy really raise, not for hand-built look-alikes."""
    engine = create_async_engine(pg_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("CREATE TABLE member (id int PRIMARY KEY, name text)"))
            await conn.commit()
            verdicts = {}
            for name, statement, params in [
                ("NUL byte", "INSERT INTO member VALUES (1, :v)", {"v": "Ana\x00"}),
                ("out of int32", "INSERT INTO member VALUES (:v, 'x')", {"v": 10**12}),
                ("duplicate", "INSERT INTO member VALUES (2, 'x'), (2, 'y')", {}),
            ]:
                try:
                    await conn.execute(sa.text(statement), params)
                except Exception as exc:  # noqa: BLE001 - the point is to get it
                    verdicts[name] = (classify(exc).fault, describe(exc))
                await conn.rollback()
            # The pool has one connection and this block holds it: the next checkout times out.
            try:
                async with engine.connect():
                    pass
            except Exception as exc:  # noqa: BLE001 - the point is to get it
                verdicts["pool timeout"] = (classify(exc).fault, classify(exc).dependency)
            # An administrator (or a failover) terminates our session.
            try:
                await conn.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
            except Exception as exc:  # noqa: BLE001 - the point is to get it
                verdicts["terminated"] = (classify(exc).fault, classify(exc).dependency)
    finally:
        await engine.dispose()
    refused = create_async_engine(pg_url.replace("127.0.0.1:5432", "127.0.0.1:1"))
    try:
        async with refused.connect():
            pass
    except Exception as exc:  # noqa: BLE001 - the point is to get it
        verdicts["refused"] = (classify(exc).fault, classify(exc).dependency)
    finally:
        await refused.dispose()

    nul_reason = 'CharacterNotInRepertoireError: invalid byte sequence for encoding "UTF8": 0x00'
    assert verdicts["NUL byte"] == (Fault.PERMANENT, nul_reason)
    int32_reason = "DataError: invalid input for query argument $1 (value out of int32 range)"
    assert verdicts["out of int32"] == (Fault.PERMANENT, int32_reason)
    assert verdicts["duplicate"][0] is Fault.PERMANENT
    assert verdicts["pool timeout"] == (Fault.INFRASTRUCTURE, "database")
    assert verdicts["terminated"] == (Fault.INFRASTRUCTURE, "database")
    assert verdicts["refused"] == (Fault.INFRASTRUCTURE, "database")


@pytest.mark.unit
def test_an_asyncio_timeout_is_infrastructure() -> None:
    async def slow() -> None:
        async with asyncio.timeout(0.001):
            await asyncio.sleep(1)

    assert classify(raised(lambda: asyncio.run(slow()))).fault is Fault.INFRASTRUCTURE


@pytest.mark.unit
async def test_readyz_turns_red_with_what_it_waits_for_and_green_after() -> None:
    from types import SimpleNamespace

    from attune_runtime.app import ready_app
    from attune_runtime.consumer import Readiness

    readiness = Readiness()
    app = ready_app("demo", SimpleNamespace(running=True), readiness)  # type: ignore[arg-type]

    async def get() -> tuple[int, dict]:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        await app({"type": "http", "path": "/readyz"}, None, send)
        return sent[0]["status"], json.loads(sent[1]["body"])

    readiness.waiting_for("consumer demo/g", "database")
    status, body = await get()
    assert status == 503 and body["waiting_for"] == {"consumer demo/g": "database"}
    readiness.recovered("consumer demo/g")
    status, body = await get()
    assert status == 200 and body["waiting_for"] == {}
