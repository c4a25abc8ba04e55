"""Whose fault is a failure: the message's, our infrastructure's, or our code's.

Every consumer asks `classify(exc)` when a handler raises, and acts on the answer:

- PERMANENT: the message is wrong and no retry can fix it (a value out of range, a constraint it
  violates, a NUL byte PostgreSQL refuses, a `PermanentError` the handler raised). It is dead-lettered
  at once as "rejected" and the consumer's `on_invalid` hook tells the sender why.
- INFRASTRUCTURE: the message is fine, the world is not (database unreachable, pool exhausted, broker
  unavailable, disk full, SQLite locked). The consumer stops fetching, reports "not ready: waiting for
  <dependency>" and retries the same message for as long as it takes.
- BUG: anything else. Bounded retries with backoff, then dead-lettered as "handler_failed", counted
  and logged as a bug.

The classifier is pure and imports no driver: it recognises exceptions by their class names along the
MRO (so it works whether or not asyncpg, aiosqlite or aiokafka are installed) and walks the chain of
wrapped causes (`orig` of SQLAlchemy errors, `__cause__`, exception groups). The first link that says
something decides; a generic SQLAlchemy OperationalError/InterfaceError defers to what it wraps.
"""

from __future__ import annotations

import enum
import errno
import re
from collections.abc import Iterator
from dataclasses import dataclass


class Fault(enum.Enum):
    INFRASTRUCTURE = "infrastructure"
    PERMANENT = "permanent"
    BUG = "bug"


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help: the message is wrong, not the world.

    The text is the reason its sender reads in the rejection event, so say what is wrong with the
    message, and never put a secret in it.
    """


class HouseholdErasedError(PermanentError):
    """Raised by a handler for a message of a household that was erased (a replay, or one that arrived late).

    Refused like any PermanentError ("rejected", with this reason), except that its dead letter does not keep
    the message's bytes: they hold what the erasure removed (names, notes, titles).
    """


class InfrastructureError(Exception):
    """Raised by a handler when something it depends on is down (not the message's fault).

    `dependency` names it for /readyz ("database", "kafka", "disk", ...).
    """

    def __init__(self, message: str, *, dependency: str = "a dependency") -> None:
        super().__init__(message)
        self.dependency = dependency


@dataclass(frozen=True)
class Verdict:
    fault: Fault
    dependency: str | None = None  # what we wait for, when the fault is INFRASTRUCTURE


# SQLSTATE classes and codes (PostgreSQL appendix A).
_PG_INFRA_CLASSES = ("08", "53", "58")  # connection exception, insufficient resources, system error
_PG_INFRA_CODES = {"57P01", "57P02", "57P03", "57P05", "55006"}  # admin/crash shutdown, cannot connect now...
_PG_PERMANENT_CLASSES = ("22", "23")  # data exception, integrity constraint violation

_INFRA_NAMES = {
    # SQLAlchemy
    "sqlalchemy.exc.DisconnectionError", "sqlalchemy.exc.TimeoutError",
    # asyncpg (connection-level; also its client-side "connection was closed" errors)
    "asyncpg.exceptions.PostgresConnectionError", "asyncpg.exceptions.ConnectionDoesNotExistError",
    "asyncpg.exceptions.CannotConnectNowError", "asyncpg.exceptions.TooManyConnectionsError",
    "asyncpg.exceptions.ConnectionFailureError", "asyncpg.exceptions.ClientCannotConnectError",
    "asyncpg.exceptions.AdminShutdownError", "asyncpg.exceptions.CrashShutdownError",
    "asyncpg.exceptions.InsufficientResourcesError", "asyncpg.exceptions.DiskFullError",
    "asyncpg.exceptions.OutOfMemoryError",
    # aiokafka
    "aiokafka.errors.KafkaConnectionError", "aiokafka.errors.KafkaTimeoutError",
    "aiokafka.errors.NodeNotReadyError", "aiokafka.errors.RequestTimedOutError",
    "aiokafka.errors.NoBrokersAvailable", "aiokafka.errors.ProducerClosed",
    # our own
    f"{__name__}.InfrastructureError",
}
_PERMANENT_NAMES = {
    f"{__name__}.PermanentError",
    "sqlalchemy.exc.DataError", "sqlalchemy.exc.IntegrityError",
    "pydantic_core._pydantic_core.ValidationError",
    "attune_contracts.registry.ContractError", "attune_contracts.trust.TrustViolation",
    "asyncpg.exceptions.DataError", "asyncpg.exceptions.IntegrityConstraintViolationError",
    "asyncpg.exceptions.CharacterNotInRepertoireError", "asyncpg.exceptions.UntranslatableCharacterError",
    "sqlite3.DataError", "sqlite3.IntegrityError",
}
# Wrappers whose meaning is in what they wrap (or, failing that, in their text).
_DEFER_NAMES = {
    "sqlalchemy.exc.OperationalError", "sqlalchemy.exc.InterfaceError", "sqlalchemy.exc.DBAPIError",
    "sqlalchemy.exc.InternalError", "sqlite3.OperationalError", "sqlite3.InterfaceError",
}
# Text of an OperationalError/InterfaceError that means "the connection or the disk", not "the query".
# Whole phrases, so that "no such column: closed_at" or a table named "connection" is not mistaken for one.
_INFRA_TEXT = (
    "database is locked", "database or disk is full", "disk i/o error", "unable to open database file",
    "connection is closed", "connection was closed", "connection refused", "connection reset", "connection lost",
    "lost connection", "could not connect", "server closed the connection", "terminating connection",
    "connection timed out", "timeout expired", "timed out", "too many clients", "the database system is",
    "no space left", "broken pipe",
)
_DISK_TEXT = ("database or disk is full", "disk i/o error", "no space left", "disk full")


def _names(exc: BaseException) -> set[str]:
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then what it wraps (SQLAlchemy's `orig`, then `__cause__`), without cycles."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for inner in (getattr(current, "orig", None), current.__cause__):
            if isinstance(inner, BaseException):
                todo.append(inner)


def _sqlstate(exc: BaseException) -> str | None:
    for attr in ("sqlstate", "pgcode"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and len(value) == 5:
            return value
    return None


def _raised_in(exc: BaseException) -> Iterator[str]:
    """The modules the exception passed through: a bare ConnectionRefusedError raised inside asyncpg's
    connect is the database's, one raised inside aiokafka the broker's."""
    tb = exc.__traceback__
    while tb is not None:
        yield str(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next


def _dependency(exc: BaseException) -> str:
    for link in _chain(exc):
        names = _names(link)
        text = str(link).lower()
        if isinstance(link, InfrastructureError):
            return link.dependency
        if (isinstance(link, OSError) and link.errno == errno.ENOSPC) or any(t in text for t in _DISK_TEXT) \
                or any(n.endswith("DiskFullError") for n in names):
            return "disk"
    modules = {n.split(".")[0] for link in _chain(exc) for n in _names(link)}
    modules |= {m.split(".")[0] for link in _chain(exc) for m in _raised_in(link)}
    if modules & {"sqlalchemy", "asyncpg", "sqlite3", "aiosqlite"}:
        return "database"
    if modules & {"aiokafka", "kafka", "faststream"}:
        return "kafka"
    return "network"


def _judge(link: BaseException) -> Fault | None:
    """What this one link says, or None when it says nothing (look further down the chain)."""
    names = _names(link)
    if isinstance(link, BaseExceptionGroup):
        verdicts = [classify(inner).fault for inner in link.exceptions]
        if Fault.INFRASTRUCTURE in verdicts:
            return Fault.INFRASTRUCTURE
        return Fault.PERMANENT if verdicts and all(v is Fault.PERMANENT for v in verdicts) else Fault.BUG
    if names & _INFRA_NAMES:
        return Fault.INFRASTRUCTURE
    if names & _PERMANENT_NAMES:
        return Fault.PERMANENT
    state = _sqlstate(link)
    if state is not None:
        if state[:2] in _PG_INFRA_CLASSES or state in _PG_INFRA_CODES:
            return Fault.INFRASTRUCTURE
        if state[:2] in _PG_PERMANENT_CLASSES:
            return Fault.PERMANENT
    if getattr(link, "connection_invalidated", False) is True:
        return Fault.INFRASTRUCTURE  # SQLAlchemy saw the connection die under the statement
    if any(n.startswith("aiokafka.errors.") for n in names) and getattr(link, "retriable", False) is True:
        return Fault.INFRASTRUCTURE
    if isinstance(link, (OSError, TimeoutError)):  # ConnectionError, ENOSPC, socket errors, asyncio timeouts
        return Fault.INFRASTRUCTURE
    if isinstance(link, (OverflowError, UnicodeError)):
        return Fault.PERMANENT  # a number or a date too big, text the database cannot encode
    if type(link) is ValueError and "out of range" in str(link):
        return Fault.PERMANENT  # datetime arithmetic: "year 10000 is out of range"
    return None


def classify(exc: BaseException) -> Verdict:
    """Whose fault `exc` is (see the module docstring), and for infrastructure, what we wait for."""
    deferred_text: list[str] = []
    for link in _chain(exc):
        fault = _judge(link)
        if fault is not None:
            return Verdict(fault, _dependency(exc) if fault is Fault.INFRASTRUCTURE else None)
        if _names(link) & _DEFER_NAMES:
            deferred_text.append(str(getattr(link, "orig", None) or link).lower())
    # A driver error that named nothing precise: its text tells a dead connection from a bad query.
    if any(word in text for text in deferred_text for word in _INFRA_TEXT):
        return Verdict(Fault.INFRASTRUCTURE, _dependency(exc))
    return Verdict(Fault.BUG)


_DRIVERS = ("asyncpg", "sqlite3", "aiosqlite", "psycopg")
HIDDEN = "<value hidden>"
# Where drivers and PostgreSQL quote a value (never an identifier) in their error text: single quotes (asyncpg:
# "invalid input for query argument $1: 'Ana' (invalid UUID 'Ana': ...)"), a double-quoted value after a colon
# ('invalid input syntax for type uuid: "Ana"'), a key's value and a failing row (PostgreSQL's DETAIL lines),
# and SQLAlchemy's parameter list (also hidden by every engine's hide_parameters=True).
_VALUE_PATTERNS = (
    (re.compile(r"'(?:[^'\\\n]|\\.)*'"), f"'{HIDDEN}'"),
    (re.compile(r'(:\s*)"[^"\n]*"(?=\s*$|\s*\()', re.MULTILINE), rf'\1"{HIDDEN}"'),
    (re.compile(r"(Key \([^)\n]*\)=)\(.*?\)( already exists| is not present| conflicts)", re.DOTALL),
     rf"\1({HIDDEN})\2"),
    (re.compile(r"(Failing row contains )\(.*\)(\.?)$", re.MULTILINE), rf"\1({HIDDEN})\2"),
    (re.compile(r"\[parameters: .*?\](?=\n|$)", re.DOTALL), "[parameters hidden]"),
)


def redact_values(text: str) -> str:
    """`text` (an error message, a traceback) without the values a database error quotes: they may be names,
    notes or channel URLs. Identifiers (a table, a constraint, an encoding) stay."""
    for pattern, replacement in _VALUE_PATTERNS:
        text = pattern.sub(replacement, text)
    return text
# asyncpg quotes the refused value ("invalid input for query argument $1: 'json://secret@...' (why)"):
# keep the argument and the why, never the value, which may be a secret or personal data.
_ASYNCPG_ARGUMENT = re.compile(r"^(invalid input for query argument \$\d+): .*\((.*)\)\s*$", re.DOTALL)


def describe(exc: BaseException, limit: int = 500) -> str:
    """A one-line reason a person can read, without the values involved.

    For database errors this is the driver's own message (e.g. 'invalid byte sequence for encoding "UTF8":
    0x00'), never SQLAlchemy's text, which carries the statement and its parameters."""
    shown = exc
    if any(n.startswith("sqlalchemy.") for n in _names(exc)):
        links = list(_chain(exc))
        drivers = [link for link in links if any(n.startswith(_DRIVERS) for n in _names(link))]
        shown = drivers[-1] if drivers else links[-1]
    text = str(shown).strip()
    if isinstance(shown, PermanentError) or "attune_contracts.trust.TrustViolation" in _names(shown):
        return (text.splitlines()[0] if text else "refused by the handler")[:limit]
    if "pydantic_core._pydantic_core.ValidationError" in _names(shown):
        errors = shown.errors(include_input=False, include_url=False)  # type: ignore[attr-defined]
        text = "; ".join(f"{'.'.join(str(p)[:60] for p in e['loc']) or '(value)'}: {e['msg']}" for e in errors[:3])
    match = _ASYNCPG_ARGUMENT.match(text)
    if match:
        text = f"{match.group(1)} ({match.group(2)})"
    text = redact_values(text.splitlines()[0]) if text else ""
    return f"{type(shown).__name__}: {text}"[:limit] if text else type(shown).__name__
