"""Hypothesis strategies for hostile Kafka records and hostile HTTP bodies.

A record is hostile in its value (random bytes, not UTF-8, a tombstone, deep nesting, huge numbers and
strings, wrong JSON types, unknown types and versions, hostile time zones, dates and RRULEs, control
characters), its key, or its headers (values that are not UTF-8). Most values start from a valid envelope
of a type the topic carries and break one thing, so they reach the deep checks, not only the first one.
Each record carries a `label` naming what was done to it, for the failure reports.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from attune_contracts import Topic
from attune_contracts.sealing import FieldKeys, installed_field_keys, private_fields
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .samples import example_envelope, specs_on

Headers = list[tuple[str, bytes]]


@dataclass
class Record:
    label: str
    value: bytes | None
    key: bytes | None = None
    headers: Headers = field(default_factory=list)

    def __repr__(self) -> str:  # failure reports stay readable with megabyte values
        shown = None if self.value is None else self.value[:120]
        size = None if self.value is None else len(self.value)
        return f"Record({self.label!r}, value[:120]={shown!r}, size={size}, key={self.key!r}, headers={self.headers!r})"


# ---- building blocks --------------------------------------------------------------------------------

json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**30, max_value=10**300),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
not_utf8 = st.binary(max_size=40).map(lambda b: b"\xff" + b)  # 0xFF never occurs in UTF-8

HOSTILE_ZONES = [
    "", "UTC ", "Mars/Olympus_Mons", "../../../etc/passwd", "/etc/localtime", "localtime", "posixrules",
    "Factory", "Europe/London\x00", "A" * 64, "A" * 65, "Europe/" + "x" * 200, "Etc/GMT+14", "Etc/GMT-14",
    "Pacific/Kiritimati", "Australia/Lord_Howe", "Asia/Kathmandu", "America/St_Johns", "Antarctica/Troll",
    "right/UTC", "posix/Europe/Paris", "EST5EDT", "Europe/Kyiv", "europe/london", "Ευρώπη/Αθήνα",
]
HOSTILE_INSTANTS = [
    "0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59.999999+00:00", "2027-06-30T23:59:60Z", "2027-02-30T12:00:00Z", "2027-03-28T01:30:00",
    "1970-01-01T00:00:00Z", "2027-03-28T01:30:00+25:00", "2027-W13-1T12:00Z", "now", "", 1e308, -1, 2**63,
]
HOSTILE_DATES = ["0001-01-01", "9999-12-31", "1900-02-29", "2027-02-29", "2027-13-01", "99999-01-01", "", 20270101]
HOSTILE_RRULES = [
    "FREQ=DAILY;BYHOUR=1,2,3,4;COUNT=999999999",
    "FREQ=DAILY;COUNT=999999999",
    "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU;COUNT=2147483647",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
    "FREQ=YEARLY;BYWEEKNO=53;BYDAY=MO",
    "FREQ=MONTHLY;BYMONTHDAY=31;BYSETPOS=-1;COUNT=999999",
    "FREQ=MONTHLY;BYSETPOS=366;BYDAY=MO",
    "FREQ=DAILY;INTERVAL=999999999",
    "FREQ=DAILY;INTERVAL=0",
    "FREQ=DAILY;INTERVAL=-1",
    "FREQ=DAILY;UNTIL=99991231T235959Z",
    "FREQ=DAILY;UNTIL=00010101T000000Z",
    "FREQ=DAILY;UNTIL=20270101;COUNT=3",
    "FREQ=SECONDLY",
    "FREQ=MINUTELY;INTERVAL=1",
    "FREQ=HOURLY;BYMINUTE=0,1,2,3,4,5,6,7,8,9",
    "FREQ=YEARLY;BYYEARDAY=-366,366;BYDAY=MO",
    "FREQ=DAILY;BYDAY=XX",
    "FREQ=DAILY;;;;",
    "DTSTART:00010101T000000\nRRULE:FREQ=DAILY",
    "FREQ=DAILY\nEXDATE:20270101T000000",
    "FREQ=WEEKLY;WKST=ZZ",
    "FREQ=DAILY;BYHOUR=25",
    "FREQ=MONTHLY;BYMONTHDAY=" + ",".join(str(d) for d in range(1, 32)),
    "FREQ=DAILY;COUNT=" + "9" * 400,
    "FREQ=DAILY;" + "X=1;" * 120,
    "FREQ=WEEKLY;BYDAY=FR\x00",
    "ＦＲＥＱ=DAILY",
]


def hostile_rrules() -> st.SearchStrategy[str]:
    return st.sampled_from(HOSTILE_RRULES) | st.text(min_size=6, max_size=80).map(lambda t: "FREQ=" + t)


def dumps(value: Any) -> bytes:
    # allow_nan: NaN and Infinity are what Python's json accepts and strict parsers refuse
    return json.dumps(value, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _set_path(envelope: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    target = envelope
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return envelope


def _paths(envelope: dict[str, Any]) -> list[tuple[str, ...]]:
    found = [(k,) for k in envelope]
    payload = envelope.get("payload")
    if isinstance(payload, dict):
        found += [("payload", k) for k in payload]
    return found


def _named(envelope: dict[str, Any], *names: str) -> list[tuple[str, ...]]:
    return [p for p in _paths(envelope) if p[-1] in names or any(p[-1].endswith(n) for n in names)]


# ---- hostile values ---------------------------------------------------------------------------------


HOWS = ("wrong_type", "missing", "extra", "unknown_type", "unknown_version", "zone", "instant", "date", "rrule",
        "huge_string", "huge_number", "deep_payload", "control_chars", "not_object_payload", "boundary")


def _sealing_keys() -> FieldKeys:
    keys = installed_field_keys()
    assert keys is not None, "tests/conftest.py installs the development field keys"
    return keys


@st.composite
def _mutated(draw: st.DrawFn, topic: Topic, household: uuid.UUID, hows: tuple[str, ...] = HOWS) -> tuple[str, bytes]:
    """A valid envelope of a type this topic carries, with one thing broken (or, for "boundary", pushed to
    an edge that the contracts may still accept)."""
    spec = draw(st.sampled_from(specs_on(topic)))
    env = example_envelope(spec, household)
    how = draw(st.sampled_from(hows))
    label = f"{spec.type}:{how}"
    if how == "wrong_type":
        path = draw(st.sampled_from(_paths(env)))
        return f"{label}:{'.'.join(path)}", dumps(_set_path(env, path, draw(json_values)))
    if how == "missing":
        path = draw(st.sampled_from(_paths(env)))
        parent = env if len(path) == 1 else env["payload"]
        del parent[path[-1]]
        return f"{label}:{'.'.join(path)}", dumps(env)
    if how == "extra":
        where = env if draw(st.booleans()) else env["payload"]
        where[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
        return label, dumps(env)
    if how == "unknown_type":
        env["type"] = draw(st.sampled_from(["x.y", "ritual.due.v2", "scheduler.", "", "RITUAL.DUE"])
                           | st.text(max_size=40) | json_values)
        return label, dumps(env)
    if how == "unknown_version":
        env["version"] = draw(st.sampled_from([0, -1, 2, 1001, 2**63, True, "1", 1.0, None, [1]])
                              | st.integers() | json_values)
        return label, dumps(env)
    if how in ("zone", "instant", "date", "rrule"):
        names = {"zone": ("time_zone",), "instant": ("occurred_at", "_at", "scheduled_for", "deadline", "until"),
                 "date": ("start_date",), "rrule": ("rrule",)}[how]
        paths = _named(env, *names) or [("payload", names[0])]
        path = draw(st.sampled_from(paths))
        pool = {"zone": st.sampled_from(HOSTILE_ZONES), "instant": st.sampled_from(HOSTILE_INSTANTS),
                "date": st.sampled_from(HOSTILE_DATES), "rrule": hostile_rrules()}[how]
        return f"{label}:{'.'.join(path)}", dumps(_set_path(env, path, draw(pool)))
    if how == "huge_string":
        path = draw(st.sampled_from(_paths(env)))
        size = draw(st.sampled_from([5_000, 100_000, 400_000]))
        return f"{label}:{'.'.join(path)}:{size}", dumps(_set_path(env, path, "x" * size))
    if how == "huge_number":
        path = draw(st.sampled_from(_paths(env)))
        digits = draw(st.integers(min_value=4_301, max_value=50_000))
        marker = "__HUGE__"
        text = dumps(_set_path(env, path, marker)).replace(f'"{marker}"'.encode(), b"9" * digits)
        return f"{label}:{'.'.join(path)}:{digits}digits", text
    if how == "deep_payload":
        depth = draw(st.sampled_from([100, 1_000, 10_000, 100_000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        marker = "__DEEP__"
        nested = (opener * depth + "1" + closer * depth).encode()
        return f"{label}:{depth}", dumps(_set_path(env, ("payload",), marker)).replace(f'"{marker}"'.encode(), nested)
    if how == "control_chars":
        paths = [p for p in _paths(env) if isinstance(env.get(p[0]) if len(p) == 1 else env["payload"].get(p[1]), str)]
        path = draw(st.sampled_from(paths))
        bad = draw(st.sampled_from(["\x00", "A\x00B", "\u202e", "\ud800", "\x1b[31m", "\r\n", "\ufeff"]))
        return f"{label}:{'.'.join(path)}", dumps(_set_path(env, path, bad))
    if how == "boundary":
        # Still valid for the contracts, most of the time: the handler's turn to cope.
        path = draw(st.sampled_from([p for p in _paths(env) if p[0] == "payload" and len(p) == 2] or _paths(env)))
        current = env["payload"].get(path[-1]) if len(path) == 2 else env.get(path[0])
        if path[-1] == "time_zone":
            pool = st.sampled_from(VALID_ODD_ZONES)
        elif isinstance(current, str) and _looks_like_instant(current):
            pool = st.sampled_from(EDGE_INSTANTS)
        elif isinstance(current, str):
            pool = st.sampled_from(EDGE_TEXT)
        elif isinstance(current, bool):
            pool = st.booleans()
        elif isinstance(current, int):
            pool = st.sampled_from([0, 1, 59, 60, 1440, 10_080, 2**31 - 1, 2**63 - 1, -1])
        elif isinstance(current, list):
            pool = st.sampled_from([[], current * 20, current * 21])
        else:
            pool = json_values
        value = draw(pool)
        if isinstance(value, str) and len(path) == 2 and (path[1],) in private_fields(spec.model):
            # Edge text in a private field, sealed as a producer would: the handler's turn, not the contracts'.
            value = _sealing_keys().seal(household, path[1], value)
        return f"{label}:{'.'.join(path)}", dumps(_set_path(env, path, value))
    env["payload"] = draw(json_values.filter(lambda v: not isinstance(v, dict)))
    return label, dumps(env)


def _looks_like_instant(text: str) -> bool:
    return len(text) >= 19 and text[4:5] == "-" and text[10:11] == "T"


VALID_ODD_ZONES = ["Pacific/Kiritimati", "Pacific/Chatham", "Australia/Lord_Howe", "Asia/Kathmandu",
                   "America/St_Johns", "Antarctica/Troll", "Etc/GMT-14", "Etc/GMT+12", "Africa/Casablanca",
                   "America/Scoresbysund", "UTC", "Europe/Dublin", "Asia/Tehran"]
EDGE_INSTANTS = ["0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59+00:00",
                 "9999-12-31T23:59:59-14:00", "1970-01-01T00:00:00Z", "2038-01-19T03:14:08Z",
                 "2027-03-28T01:30:00+01:00", "2027-10-31T01:30:00+00:00", "2100-02-28T23:59:59.999999Z"]
EDGE_TEXT = ["\x00", "a\x00b", "\u202eevil", "😀" * 50, "x" * 200, "x" * 201, " ", "\t\n", "'; DROP TABLE x;--",
             "<script>alert(1)</script>", "%s%s%n", "ℌ𝔢𝔩𝔩𝔬", "\ufeff", "Ä" * 100]


def _raw_values() -> st.SearchStrategy[tuple[str, bytes | None]]:
    deep_raw = st.tuples(st.sampled_from(["[", '{"a":', '{"type":']), st.integers(min_value=1_000, max_value=200_000))
    return st.one_of(
        st.just(("tombstone", None)),
        st.binary(max_size=300).map(lambda b: ("random_bytes", b)),
        not_utf8.map(lambda b: ("not_utf8", b)),
        json_values.map(lambda v: ("any_json", dumps(v))),
        deep_raw.map(lambda d: (f"deep_raw:{d[1]}", (d[0] * d[1]).encode())),
        st.integers(min_value=4_301, max_value=100_000).map(lambda n: (f"huge_number:{n}", b"1" * n)),
        st.sampled_from([b"", b" ", b"null", b"{}", b"[]", b'""', b"NaN", b"-Infinity", b"1e999", b'{"type":1}',
                         b'{"type":"ritual.due"}', b'{"type":"ritual.due","version":1}',
                         b'\xef\xbb\xbf{"type":"x"}', b'{"type":"a.b","version":1,"type":"ritual.due"}']
                        ).map(lambda b: ("edge", b)),
    )


@st.composite
def hostile_values(draw: st.DrawFn, topic: Topic, household: uuid.UUID) -> tuple[str, bytes | None]:
    # Two in three start from a valid envelope: they get past the JSON parser to the contract checks.
    if draw(st.integers(min_value=0, max_value=2)) == 0:
        return draw(_raw_values())
    return draw(_mutated(topic, household))


@st.composite
def hostile_records(draw: st.DrawFn, topic: Topic) -> Record:
    # A household of its own per record: a valid erasure among them erases nothing the others need.
    household = draw(st.uuids(version=4))
    label, value = draw(hostile_values(topic, household))
    key = draw(st.one_of(st.just(str(household).encode()), st.none(), st.binary(max_size=40), not_utf8))
    if value is None and key is None:
        key = str(household).encode()  # a tombstone has a key (aiokafka refuses a record with neither)
    # One in four has a header value that is not UTF-8; the others reach the body checks whatever the consumer
    # decides about such headers.
    header_value = (st.binary(max_size=30) | not_utf8) if draw(st.integers(0, 3)) == 0 else \
        st.text(max_size=30).map(str.encode)
    headers = draw(st.lists(st.tuples(st.text(max_size=20), header_value), max_size=4))
    return Record(label, value, key, headers)


@st.composite
def boundary_records(draw: st.DrawFn, topic: Topic) -> Record:
    """Valid envelopes with one field at an edge (NUL in a name, year 1 or 9999, a half-hour-DST zone, 20
    participants): most pass the contracts, so they test the handlers, not the parser."""
    household = draw(st.uuids(version=4))
    label, value = draw(_mutated(topic, household, ("boundary",)))
    return Record(label, value, str(household).encode())


def near_size_limit(topic: Topic, household: uuid.UUID, size: int = 1_000_000) -> list[Record]:
    """Records just under Kafka's default 1 MiB message limit: a dead letter of one of them (base64, plus the
    reason) is bigger than the producer may send, unless the consumer cuts the bytes."""
    env = example_envelope(specs_on(topic)[0], household)
    env["producer"] = "__PAD__"
    shell = dumps(env)
    padded = shell.replace(b"__PAD__", b"p" * (size - len(shell) + len(b"__PAD__")))
    return [
        Record("near_limit:valid_shape_huge_producer", padded, str(household).encode()),
        Record("near_limit:random_bytes", bytes(range(256)) * (size // 256), str(household).encode()),
    ]


# ---- drawing a batch --------------------------------------------------------------------------------


def draw_many(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """n examples generated by hypothesis (no shrinking: the records are sent all at once and checked
    together, and each failure report names the records that were not accounted for)."""
    out: list[Any] = []

    @settings(max_examples=n, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example: Any) -> None:
        out.append(example)

    collect()
    return out
