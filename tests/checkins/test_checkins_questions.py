"""The day's question, answered by both (issue 14): check-ins keeps the question the notifier asked and each
member's answer; a partner's answer is shown only to a member who has answered too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html import escape
from uuid import UUID, uuid4

from attune_checkins.question_rules import (
    Answer,
    AnswerOutcome,
    QuestionRefused,
    check_answer,
    visible_answers,
)
from attune_checkins.questions import Question
from attune_contracts import catalog
from attune_contracts.credentials import development_issuer
from attune_contracts.messages import QuestionAnswered, QuestionAsked, QuestionBank

from .conftest import Api

T0 = datetime(2027, 3, 2, 1, 30, tzinfo=UTC)
ANA, BEN, KIM = uuid4(), uuid4(), uuid4()
KEY = catalog.question_key(catalog.CURIOSITY_QUESTIONS[0])


# ---- the rules, pure ---------------------------------------------------------------------------------------


def _question(household: UUID) -> Question:
    return Question(uuid4(), household, uuid4(), "curiosity_question", "adult", KEY, "light", T0)


def test_each_sees_their_own_answer_and_the_partners_only_after_answering() -> None:
    ana = Answer(ANA, "The walk by the river", T0)
    ben = Answer(BEN, "Breakfast together", T0 + timedelta(minutes=5))
    only_ana = {ANA: ana}
    # Ana answered: she sees hers, and that Ben has not answered yet.
    assert visible_answers(only_ana, {ANA, BEN}, ANA) == [
        row for row in sorted([
            {"member_id": str(ANA), "answered": True, "answered_at": T0.isoformat(), "text": "The walk by the river",
             "withheld": False},
            {"member_id": str(BEN), "answered": False, "answered_at": None, "text": None, "withheld": False},
        ], key=lambda r: r["member_id"])]
    # Ben has not answered: he learns that Ana did, not what she wrote.
    ben_sees = {r["member_id"]: r for r in visible_answers(only_ana, {ANA, BEN}, BEN)}
    assert ben_sees[str(ANA)]["answered"] and ben_sees[str(ANA)]["text"] is None and ben_sees[str(ANA)]["withheld"]
    # Both answered: both see both.
    both = {ANA: ana, BEN: ben}
    for viewer in (ANA, BEN):
        texts = {r["member_id"]: r["text"] for r in visible_answers(both, {ANA, BEN}, viewer)}
        assert texts == {str(ANA): "The walk by the river", str(BEN): "Breakfast together"}
    # A household credential (no member) learns who answered, never what.
    assert all(r["text"] is None and r["withheld"] for r in visible_answers(both, {ANA, BEN}, None))


def test_who_may_answer_and_a_second_answer() -> None:
    household = uuid4()
    q = _question(household)
    assert check_answer(q, household, frozenset({ANA, BEN}), ANA, "hi", None) is AnswerOutcome.NEW
    assert check_answer(q, household, frozenset({ANA, BEN}), ANA, "hi", Answer(ANA, "hi", T0)) is AnswerOutcome.UNCHANGED
    for args, status in (
        ((q, household, frozenset({ANA, BEN}), ANA, "other words", Answer(ANA, "hi", T0)), 409),
        ((q, household, frozenset({ANA, BEN}), KIM, "hi", None), 403),  # not taking part
        ((q, uuid4(), frozenset({ANA, BEN}), ANA, "hi", None), 404),  # another household's occurrence
        ((None, household, frozenset({ANA, BEN}), ANA, "hi", None), 404),  # no question asked
    ):
        try:
            check_answer(*args)
        except QuestionRefused as exc:
            assert exc.status == status, (exc.status, exc.reason)
        else:
            raise AssertionError(f"not refused: {args}")


# ---- the service: QuestionAsked consumed, the HTTP API, the event, encryption at rest -------------------


def _as(api: Api, member: UUID, household: UUID | None = None) -> dict[str, str]:
    token = development_issuer().member(household or api.h.household, member, now=api.h.clock.now())
    return {"Authorization": f"Bearer {token}"}


async def _ask(api: Api, *, bank: QuestionBank = QuestionBank.ADULT, key: str = KEY) -> QuestionAsked:
    due = api.due
    asked = QuestionAsked(occurrence_id=due.occurrence_id, ritual_id=due.ritual_id, template="curiosity_question",
                          bank=bank, question_key=key, depth="light" if bank is QuestionBank.ADULT else None,
                          scheduled_for=due.scheduled_for)
    await api.h.send(asked, event_id=uuid4())
    return asked


def _answers_path(api: Api, household: UUID | None = None) -> str:
    return f"/v1/households/{household or api.h.household}/questions/{api.due.occurrence_id}"


async def test_both_answer_and_each_then_sees_both(api: Api) -> None:
    h = api.h
    asked = await _ask(api)
    await h.send(asked, event_id=uuid4())  # redelivered under another id: the first question stays, no error
    path = _answers_path(api)
    first = await api.client.post(f"{path}/answers", json={"member_id": str(h.ana), "text": "  The walk home  "},
                                  headers=_as(api, h.ana))
    assert first.status_code == 201, first.text
    assert first.json()["question"]["question_key"] == KEY
    # Ben has not answered: Ana's words are withheld from him.
    seen_by_ben = (await api.client.get(path, headers=_as(api, h.ben))).json()
    rows = {r["member_id"]: r for r in seen_by_ben["answers"]}
    assert rows[str(h.ana)] == {**rows[str(h.ana)], "answered": True, "text": None, "withheld": True}
    assert "The walk home" not in (await api.client.get(path, headers=_as(api, h.ben))).text
    # Ana sees her own.
    rows = {r["member_id"]: r for r in (await api.client.get(path, headers=_as(api, h.ana))).json()["answers"]}
    assert rows[str(h.ana)]["text"] == "The walk home" and rows[str(h.ben)]["answered"] is False
    second = await api.client.post(f"{path}/answers", json={"member_id": str(h.ben), "text": "Your laugh"},
                                   headers=_as(api, h.ben))
    assert second.status_code == 201
    for member in (h.ana, h.ben):
        rows = {r["member_id"]: r["text"] for r in (await api.client.get(path, headers=_as(api, member))).json()["answers"]}
        assert rows == {str(h.ana): "The walk home", str(h.ben): "Your laugh"}
    # Announced without the text, once per member, in order: 1 answer, then 2.
    events = h.sink.of(QuestionAnswered)
    assert [(e.member_id, e.answers) for e in events] == [(h.ana, 1), (h.ben, 2)]
    assert not any(b"The walk home" in r[2] or b"Your laugh" in r[2] for r in h.sink.records)
    # Encrypted at rest, like notes.
    async with h.store.engine.connect() as conn:
        from sqlalchemy import text

        stored = (await conn.execute(text("SELECT answer FROM question_answers"))).scalars().all()
    assert len(stored) == 2 and not any(b"The walk home" in bytes(s) or b"Your laugh" in bytes(s) for s in stored)


async def test_the_same_answer_again_changes_nothing_and_other_words_are_refused(api: Api) -> None:
    h = api.h
    await _ask(api)
    path = _answers_path(api)
    body = {"member_id": str(h.ana), "text": "Sunday mornings"}
    assert (await api.client.post(f"{path}/answers", json=body, headers=_as(api, h.ana))).status_code == 201
    again = await api.client.post(f"{path}/answers", json=body, headers=_as(api, h.ana))
    assert again.status_code == 200 and again.json()["outcome"] == "unchanged"
    other = await api.client.post(f"{path}/answers", json={**body, "text": "Rainy evenings"}, headers=_as(api, h.ana))
    assert other.status_code == 409 and "already" in other.json()["error"]
    assert len(h.sink.of(QuestionAnswered)) == 1


async def test_refusals(api: Api) -> None:
    h = api.h
    path = _answers_path(api)
    ana_body = {"member_id": str(h.ana), "text": "hello"}
    # No question asked for this occurrence yet.
    assert (await api.client.post(f"{path}/answers", json=ana_body, headers=_as(api, h.ana))).status_code == 404
    await _ask(api)
    # Ben's credential cannot answer as Ana; a household credential answers for nobody.
    assert (await api.client.post(f"{path}/answers", json=ana_body, headers=_as(api, h.ben))).status_code == 403
    assert (await api.client.post(f"{path}/answers", json=ana_body, headers=api.headers)).status_code == 403
    # Another household's member, even with a valid credential of their own household.
    other, stranger = uuid4(), uuid4()
    refused = await api.client.post(f"{_answers_path(api, other)}/answers",
                                    json={"member_id": str(stranger), "text": "hi"}, headers=_as(api, stranger, other))
    assert refused.status_code == 404
    assert (await api.client.get(_answers_path(api), headers=_as(api, stranger, other))).status_code == 403
    # A member of the household who does not take part in this occurrence.
    kim = uuid4()
    from attune_contracts.messages import MemberRole, MemberUpserted

    await h.send(MemberUpserted(member_id=kim, display_name="Kim", role=MemberRole.CHILD, time_zone=h.zone))
    kim_says = await api.client.post(f"{path}/answers", json={"member_id": str(kim), "text": "hi"},
                                     headers=_as(api, kim))
    assert kim_says.status_code == 403
    # Empty and oversized answers say what is wrong.
    empty = await api.client.post(f"{path}/answers", json={**ana_body, "text": "   "}, headers=_as(api, h.ana))
    assert empty.status_code == 422 and "empty" in empty.json()["error"]
    long = await api.client.post(f"{path}/answers", json={**ana_body, "text": "x" * 2001}, headers=_as(api, h.ana))
    assert long.status_code == 422
    assert h.sink.of(QuestionAnswered) == []


async def test_a_childs_question_is_answered_by_parent_and_child_alike(api: Api) -> None:
    h = api.h
    key = catalog.question_key(catalog.CHILD_QUESTIONS[0])
    await _ask(api, bank=QuestionBank.CHILD, key=key)
    path = _answers_path(api)
    for member, words in ((h.ana, "Seeing you at the gate"), (h.ben, "The swings")):
        got = await api.client.post(f"{path}/answers", json={"member_id": str(member), "text": words},
                                    headers=_as(api, member))
        assert got.status_code == 201
    view = (await api.client.get(path, headers=_as(api, h.ben))).json()
    assert view["bank"] == "child" and catalog.question_by_key(view["question_key"]) == ("child", catalog.CHILD_QUESTIONS[0])
    assert sorted(r["text"] for r in view["answers"]) == ["Seeing you at the gate", "The swings"]


async def test_the_one_tap_page_of_an_occurrence_shows_its_question(api: Api) -> None:
    from urllib.parse import quote

    path = f"/l/{quote(api.mint(), safe='')}"
    before = await api.client.get(path)
    assert before.status_code == 200 and "Today&#x27;s question" not in before.text and "Today's question" not in before.text
    await _ask(api)
    page = await api.client.get(path)
    assert page.status_code == 200 and escape("Today's question:") + " <strong>" in page.text
    assert escape(catalog.CURIOSITY_QUESTIONS[0]) in page.text
