"""Hostile requests on every check-ins endpoint: each gets a 4xx that says what is wrong (JSON `error` on the
API, a page on the one-tap links), nothing is recorded or announced, and the service keeps answering."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DataError, OperationalError

from .conftest import Api

pytestmark = [pytest.mark.unit]

JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def _checkin(api: Api, **change: object) -> dict[str, object]:
    return {"occurrence_id": str(api.due.occurrence_id), "member_id": str(api.h.ana), "status": "done", **change}


def _moment(api: Api, **change: object) -> dict[str, object]:
    return {"member_id": str(api.h.ana), "kind": "positive", **change}


async def _refused_with_a_reason(response, words: str = "") -> None:  # type: ignore[no-untyped-def]
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if response.headers["content-type"].startswith("application/json"):
        error = response.json()["error"]
        assert error and words.lower() in error.lower(), error
    else:
        assert "<p>" in response.text and words.lower() in response.text.lower(), response.text[:500]


BODIES = {
    # name: (raw body, words the refusal must say)
    "huge": (b'{"note": "' + b"x" * 100_000 + b'"}', "larger than 65536 bytes"),
    "deep nesting": (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
    "5000-digit number": (b'{"closeness": ' + b"9" * 5000 + b"}", "number too long"),
    "not JSON": (b"{not json", "JSON"),
    "infinite number": (b'{"closeness": 1e999}', "closeness"),
    "not UTF-8": (b'{"note": "\xff\xfe"}', ""),
    "null": (b"null", "Input should be a valid dictionary"),
    "a list": (b"[]", "Input should be a valid dictionary"),
    "empty": (b"", "Field required"),
}


@pytest.mark.parametrize("path", ["checkins", "moments"])
@pytest.mark.parametrize("name", list(BODIES))
async def test_hostile_bodies_are_refused_with_a_reason(api: Api, path: str, name: str) -> None:
    body, words = BODIES[name]
    response = await api.client.post(f"/v1/households/{api.h.household}/{path}", content=body,
                                     headers={**api.headers, **JSON})
    await _refused_with_a_reason(response, words)
    assert response.status_code != 422 or name not in {"huge"}
    assert await api.h.count("checkins") == 0 and await api.h.count("moments") == 0
    assert await api.h.count("checkins_outbox") == 0 and api.h.sink.published == []


CHECKIN_CASES = {
    "NUL in the note": ({"note": "a\x00b"}, "note: Value error, must not contain NUL"),
    "wrong type": ({"occurrence_id": 5}, "occurrence_id: UUID input should be a string"),
    "not a UUID": ({"member_id": "not-a-uuid"}, "member_id: Input should be a valid UUID"),
    "huge rating": ({"closeness": 10**40}, "closeness: Input should be less than or equal to 5"),
    "float rating": ({"closeness": 2.5}, "closeness"),
    "unknown field": ({"mood": "great"}, "mood: Extra inputs are not permitted"),
    "snooze in year 9999": ({"status": "snoozed", "snoozed_until": "9999-12-31T23:59:59-10:00"},
                            "snoozed_until: Value error, is out of range"),
    "snooze in year 1": ({"status": "snoozed", "snoozed_until": "0001-01-01T00:00:00+14:00"},
                         "snoozed_until: Value error, is out of range"),
    "snooze in 2999": ({"status": "snoozed", "snoozed_until": "2999-01-01T00:00:00Z"},
                       "must be between 2000 and 2200"),
    "naive snooze": ({"status": "snoozed", "snoozed_until": "2027-03-02T10:00:00"}, "timezone"),
    "note as object": ({"note": {"$gt": ""}}, "note: Input should be a valid string"),
}


@pytest.mark.parametrize("name", list(CHECKIN_CASES))
async def test_hostile_check_ins_are_refused_with_a_reason(api: Api, name: str) -> None:
    change, words = CHECKIN_CASES[name]
    response = await api.client.post(f"/v1/households/{api.h.household}/checkins", json=_checkin(api, **change),
                                     headers=api.headers)
    assert response.status_code == 422
    await _refused_with_a_reason(response, words)
    assert await api.h.count("checkins") == 0 and api.h.sink.published == []


MOMENT_CASES = {
    "NUL in the note": ({"note": "\x00"}, "note: Value error, must not contain NUL"),
    "happened in year 9999": ({"happened_at": "9999-12-31T23:59:59-12:00"}, "happened_at: Value error"),
    "happened in year 1": ({"happened_at": "0001-01-01T00:00:00+01:00"}, "happened_at: Value error"),
    "bad moment id": ({"moment_id": "1234"}, "moment_id"),
    "unknown kind": ({"kind": "meh"}, "kind: Input should be"),
    "unknown field": ({"weight": 1}, "weight: Extra inputs are not permitted"),
}


@pytest.mark.parametrize("name", list(MOMENT_CASES))
async def test_hostile_moments_are_refused_with_a_reason(api: Api, name: str) -> None:
    change, words = MOMENT_CASES[name]
    response = await api.client.post(f"/v1/households/{api.h.household}/moments", json=_moment(api, **change),
                                     headers=api.headers)
    assert response.status_code == 422
    await _refused_with_a_reason(response, words)
    assert await api.h.count("moments") == 0 and api.h.sink.published == []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("/v1/households/not-a-uuid/summary", "household_id: Input should be a valid UUID"),
        ("/v1/households/00000000-0000-0000-0000-00000000000g/checkins", "household_id"),
        ("/v1/households/{h}/checkins?page=" + "9" * 40, "page: Input should be less than or equal to 100000"),
        ("/v1/households/{h}/checkins?page=-1", "page: Input should be greater than or equal to 1"),
        ("/v1/households/{h}/checkins?page_size=1e9", "page_size: Input should be a valid integer"),
        ("/v1/households/{h}/export?x=%00", ""),
    ],
)
async def test_hostile_paths_and_queries_are_refused_with_a_reason(api: Api, url: str, words: str) -> None:
    response = await api.client.get(url.replace("{h}", str(api.h.household)), headers=api.headers)
    if "%00" in url:
        assert response.status_code == 200  # an unknown query parameter is ignored, not a failure
        return
    await _refused_with_a_reason(response, words)


async def test_a_huge_or_strange_bearer_token_is_401(api: Api) -> None:
    for token in ("x" * 10_000, "hh1_" + "é" * 10, "hh1_\t", "a.b.c", "e30.e30.AAAA"):
        response = await api.client.get(f"/v1/households/{api.h.household}/summary",
                                        headers={"Authorization": f"Bearer {token}".encode()})  # type: ignore[dict-item]
        assert response.status_code == 401
        await _refused_with_a_reason(response, "not an attune credential")


@pytest.mark.parametrize(
    "token",
    ["", ".", "k1.", ".abc", "k1.%00", "%00.%00", "k1.%FF%FE", "k1." + "A" * 5000, "x" * 1500,
     "k1.eyJ0IjoxfQ.AAAA", "k9.eyJ0IjoxfQ.AAAA", "k1.💥", "..%2F..%2Fetc%2Fpasswd"],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_bad_link_tokens_get_a_page_that_says_what_to_do(api: Api, token: str, method: str) -> None:
    response = await api.client.request(method, f"/l/{token}", content=b"closeness=4", headers=FORM)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")
    assert "<p>" in response.text and ("be used" in response.text or response.status_code == 404)
    assert await api.h.count("checkins") == 0 and await api.h.count("used_link_tokens") == 0


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"closeness=" + b"9" * 100, 400, "Closeness is a number from 1 to 5"),
        (b"closeness=%00", 400, "Closeness is a number from 1 to 5"),
        (b"closeness=\xff\xfe", 400, "Closeness is a number from 1 to 5"),
        (b"closeness=1&" + b"x=" + b"y" * 100_000, 413, "larger than 65536 bytes"),
    ],
)
async def test_hostile_link_forms_get_a_page_and_record_nothing(api: Api, body: bytes, status: int,
                                                               words: str) -> None:
    response = await api.client.post(f"/l/{api.mint()}", content=body, headers=FORM)
    assert response.status_code == status and response.headers["content-type"].startswith("text/html")
    assert words in response.text
    assert await api.h.count("checkins") == 0 and await api.h.count("used_link_tokens") == 0


async def test_after_all_that_a_good_check_in_still_works(api: Api) -> None:
    base = f"/v1/households/{api.h.household}"
    for body, _ in BODIES.values():
        await api.client.post(f"{base}/checkins", content=body, headers={**api.headers, **JSON})
    for change, _ in CHECKIN_CASES.values():
        await api.client.post(f"{base}/checkins", json=_checkin(api, **change), headers=api.headers)
    good = await api.client.post(f"{base}/checkins", json=_checkin(api, closeness=4, note="ok"), headers=api.headers)
    assert good.status_code == 201 and good.json()["checkin"]["closeness"] == 4
    assert await api.h.count("checkins") == 1 and len(api.h.sink.published) == 2  # CheckInRecorded, StreakUpdated


@pytest.mark.parametrize(
    ("error", "status", "words"),
    [
        (DataError("INSERT ...", {}, Exception("invalid byte sequence for encoding UTF8: 0x00")), 422,
         "cannot be stored"),
        (OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused")), 503, "try again"),
        (ConnectionResetError("the database went away"), 503, "try again"),
    ],
)
async def test_a_database_refusal_is_422_and_an_outage_is_503_never_500(api: Api, monkeypatch: pytest.MonkeyPatch,
                                                                          error: Exception, status: int,
                                                                          words: str) -> None:
    async def fails(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(api.parts.service, "submit", fails)
    monkeypatch.setattr(api.parts.service, "use_link", fails)
    response = await api.client.post(f"/v1/households/{api.h.household}/checkins", json=_checkin(api),
                                     headers=api.headers)
    assert response.status_code == status and words in response.json()["error"]
    tap = await api.client.post(f"/l/{api.mint()}", content=b"closeness=4", headers=FORM)
    assert tap.status_code == status and tap.headers["content-type"].startswith("text/html") and words in tap.text
    if status == 503:
        assert response.headers["retry-after"] == tap.headers["retry-after"] == "5"
