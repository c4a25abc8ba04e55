"""Done / Skip / Snooze in every message about a ritual (issue 15), and members with no channel skipped on
purpose: through the notifier's real pipeline (handler, store on SQLite, delivery worker, Apprise to real local
destinations), with the tokens checked by the signer the check-ins service verifies with."""

from __future__ import annotations

import email
import re
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from attune_contracts.links import LinkAction
from attune_contracts.messages import RitualDue, RitualReminder
from attune_notifier.links import LINK_TTL
from attune_runtime.testing import FakeClock

from .conftest import ANA, BEN, HOUSEHOLD, HttpSink, SmtpSink, utc
from .harness import PUBLIC_URL, Harness, make_harness

pytestmark = [pytest.mark.integration]

LINE = re.compile(r"^(Done|Skip|Snooze): (\S+)$", re.MULTILINE)


@pytest.fixture
async def h(tmp_path: Path):
    harness = await make_harness(f"sqlite+aiosqlite:///{tmp_path}/notifier.db", FakeClock(utc(2026, 11, 26, 19)))
    yield harness
    await harness.close()


def due_at(at, members=(ANA, BEN)) -> RitualDue:
    return RitualDue(occurrence_id=uuid4(), ritual_id=uuid4(), template="evening_attunement",
                     title="Evening attunement", participants=list(members), scheduled_for=at,
                     local_time=at.isoformat(), time_zone="Europe/London", sensitive=False,
                     deadline=at + timedelta(hours=12))


def claims_of(h: Harness, url: str):
    assert url.startswith(f"{PUBLIC_URL}/l/"), url
    return h.signer.verify(url.removeprefix(f"{PUBLIC_URL}/l/"), now=h.clock.now())


async def test_push_and_email_offer_done_skip_and_snooze(h: Harness, http_sink: HttpSink, smtp_sink: SmtpSink) -> None:
    await h.member(ANA, "Ana")
    await h.member(BEN, "Ben")
    await h.channel(ANA, http_sink.url("json", "ana"))
    await h.channel(BEN, smtp_sink.url("ben@example.org"))
    due = due_at(h.clock.now())
    await h.event(due)
    assert await h.worker.drain() == 2

    [push] = [r.json for r in http_sink.received]
    lines = LINE.findall(push["message"])
    assert [label for label, _ in lines] == ["Done", "Skip", "Snooze"], push["message"]
    actions = [claims_of(h, url) for _, url in lines]
    assert [c.action for c in actions] == [LinkAction.DONE, LinkAction.SKIP, LinkAction.SNOOZE]
    assert {(c.occurrence_id, c.member_id, c.household_id) for c in actions} == {(due.occurrence_id, ANA, HOUSEHOLD)}
    assert len({c.token_id for c in actions}) == 3  # each its own single-use token

    [raw] = smtp_sink.box.messages
    parts = {p.get_content_type(): p.get_payload(decode=True).decode()
             for p in email.message_from_bytes(raw).walk() if not p.is_multipart()}
    hrefs = re.findall(r'<a href="([^"]+)">([^<]+)</a>', parts["text/html"])
    assert [label for _, label in hrefs] == ["Mark it done", "Skip this time", "Remind me later"]
    assert [claims_of(h, url.replace("&amp;", "&")).action for url, _ in hrefs] == [
        LinkAction.DONE, LinkAction.SKIP, LinkAction.SNOOZE]
    assert "Mark it done" in parts["text/plain"]  # Apprise derives the text part from the HTML
    assert all(claims_of(h, url.replace("&amp;", "&")).member_id == BEN for url, _ in hrefs)


async def test_a_links_page_speaks_its_readers_language(h: Harness, http_sink: HttpSink) -> None:
    """The token carries its reader's locale, so the check-ins page it opens speaks the message's language."""
    await h.member(ANA, "Ana")
    await h.member(BEN, "Ben", locale="de-DE")
    await h.channel(ANA, http_sink.url("json", "ana"))
    await h.channel(BEN, http_sink.url("json", "ben"))
    await h.event(due_at(h.clock.now()))
    assert await h.worker.drain() == 2
    by_reader = {r.path.rsplit("/", 1)[-1]: r.json["message"] for r in http_sink.received}
    german = re.findall(r"^(?:Erledigt|Auslassen|Später): (\S+)$", by_reader["ben"], re.MULTILINE)
    assert len(german) == 3, by_reader["ben"]
    assert {claims_of(h, url).locale for url in german} == {"de_DE"}
    assert {claims_of(h, url).locale for _, url in LINE.findall(by_reader["ana"])} == {"en_GB"}


async def test_a_pushover_push_keeps_within_its_1024_characters_with_whole_links(
        h: Harness, http_sink: HttpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three signed links are about 1,100 characters: Pushover's limit is 1,024. The message goes with its
    words and the links that fit whole (Done first), rather than refused or cut mid-link."""
    from urllib.parse import parse_qs

    from apprise.plugins.pushover import NotifyPushover

    monkeypatch.setattr(NotifyPushover, "notify_url", http_sink.url("http", "1/messages.json"))
    await h.member(ANA, "Ana", locale="de-DE")
    await h.channel(ANA, f"pover://{'u' * 30}@{'a' * 30}")
    await h.event(due_at(h.clock.now(), members=(ANA,)))
    assert await h.worker.drain() == 1
    [sent] = http_sink.received
    message = parse_qs(sent.body.decode())["message"][0]
    assert len(message) <= NotifyPushover.body_maxlen, len(message)
    assert message.startswith("Zehn Minuten füreinander")  # the words whole
    kept = re.findall(r"^(Erledigt|Auslassen|Später): (\S+)$", message, re.MULTILINE)
    assert [label for label, _ in kept][:1] == ["Erledigt"] and 1 <= len(kept) < 3, message
    assert all(claims_of(h, url).member_id == ANA for _, url in kept)  # each kept link whole: it verifies


@pytest.mark.parametrize(("limit", "kept"), [(10_000, 3), (1024, 2), (700, 1), (300, 0)])
def test_links_are_left_out_from_the_last_never_cut(limit: int, kept: int) -> None:
    from attune_notifier.links import fit_links

    words = "How was your day, really?"
    link_text = "\n".join(f"{label}: https://c.example/l/{label[0] * 320}" for label in ("Done", "Skip", "Snooze"))
    fitted = fit_links(f"{words}\n{link_text}", link_text, limit)
    assert fitted.split("\n") == [words, *link_text.split("\n")[:kept]]
    assert len(fitted) <= limit


async def test_a_day_before_reminders_links_still_work_after_the_ritual(h: Harness, http_sink: HttpSink) -> None:
    await h.member(ANA, "Ana")
    await h.channel(ANA, http_sink.url("json", "ana"))
    at = h.clock.now() + timedelta(days=3)  # a reminder three days ahead: a 36-hour link would die before it
    await h.event(RitualReminder(
        occurrence_id=uuid4(), ritual_id=uuid4(), template="date_night", title="Date night", participants=[ANA],
        scheduled_for=at, local_time=at.isoformat(), time_zone="Europe/London", sensitive=False,
        reminder_id=uuid4(), offset_minutes=3 * 24 * 60, remind_at=h.clock.now()))
    await h.worker.drain()
    [push] = [r.json for r in http_sink.received]
    done = dict(LINE.findall(push["message"]))["Done"]
    assert claims_of(h, done).expires_at == at + LINK_TTL


async def test_a_member_with_no_channel_is_skipped_on_purpose_and_counted(h: Harness, http_sink: HttpSink) -> None:
    await h.member(ANA, "Ana")
    await h.member(BEN, "Ben")  # an adult with no channel at all
    await h.channel(ANA, http_sink.url("json", "ana"))
    await h.event(due_at(h.clock.now()))
    await h.worker.drain()
    assert [r.path for r in http_sink.received] == ["/ana"]
    [dropped] = h.publisher.events("notification_dropped")
    assert dropped["payload"]["member_id"] == str(BEN) and dropped["payload"]["reason"] == "no_channel"
    assert h.metric("attune_notifier_no_channel_total", role="partner") == 1
    assert h.metric("attune_notifier_dropped_total", reason="no_channel") == 1
    # Not retried: nothing is due for Ben later, and nothing is dead-lettered.
    h.clock.advance(timedelta(hours=2))
    assert await h.worker.drain() == 0
    assert h.publisher.events("notification_failed") == [] and h.publisher.events("notification_dead_lettered") == []


TWILIO_SID = "AC" + "2" * 32
TWILIO_URL = f"twilio://{TWILIO_SID}:{'twiliotoken' + '8' * 21}@15551230000/15557654321"
TWILIO_API = f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"


async def test_an_sms_carries_a_short_done_link_that_only_check_ins_can_resolve(h: Harness) -> None:
    """The code travels only in the SMS; the event holds its hash and the token sealed with it."""
    from urllib.parse import parse_qs

    import responses
    from attune_runtime import shortlinks

    await h.member(ANA, "Ana")
    await h.channel(ANA, TWILIO_URL)
    due = due_at(h.clock.now(), members=(ANA,))
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TWILIO_API, json={"sid": "SM1"}, status=201)
        await h.event(due)
        assert await h.worker.drain() == 1
        [body] = parse_qs(mock.calls[0].request.body)["Body"]
    assert len(body) <= 160 and all(ord(ch) < 128 for ch in body), body  # one GSM-7 segment
    match = re.search(rf"Done\? {re.escape(PUBLIC_URL)}/s/(\S+)$", body)
    assert match, body
    code = match.group(1)
    assert shortlinks.is_code(code)
    [issued] = h.publisher.events("notifications.short_link_issued")
    assert issued["producer"] == "notifier" and issued["household_id"] == str(HOUSEHOLD)
    payload = issued["payload"]
    assert code not in json_text(issued) and payload["code_id"] == shortlinks.code_id(code)
    token = shortlinks.unseal(payload["sealed_token"], code)
    assert token is not None and shortlinks.unseal(payload["sealed_token"], shortlinks.new_code()) is None
    claims = h.signer.verify(token, now=h.clock.now())
    assert (claims.action, claims.member_id, claims.occurrence_id) == (LinkAction.DONE, ANA, due.occurrence_id)
    assert payload["expires_at"].startswith(claims.expires_at.isoformat()[:19])
    # The SMS is sent after its short link was published, never before.
    topics = [topic for topic, _ in h.publisher.sent]
    assert topics.index("attune.links.short") < topics.index("attune.notifications.outcomes")


async def test_an_sms_goes_without_a_link_if_its_short_link_cannot_be_issued(h: Harness) -> None:
    import responses

    async def broken(*_: object, **__: object) -> None:
        raise ConnectionError("broker away")

    await h.member(ANA, "Ana")
    await h.channel(ANA, TWILIO_URL)
    original = h.worker.publisher.publish

    async def publish(payload, **kw):  # type: ignore[no-untyped-def]
        if type(payload).__name__ == "ShortLinkIssued":
            await broken()
        return await original(payload, **kw)

    h.worker.publisher.publish = publish  # type: ignore[method-assign]
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TWILIO_API, json={"sid": "SM1"}, status=201)
        await h.event(due_at(h.clock.now(), members=(ANA,)))
        assert await h.worker.drain() == 1
        body = mock.calls[0].request.body
    assert "%2Fs%2F" not in body and "/s/" not in body and "Done" not in body
    assert len(h.publisher.events("notification_sent")) == 1


def json_text(value: object) -> str:
    import json

    return json.dumps(value)


@pytest.mark.parametrize("neutral", [False, True])
def test_an_sms_keeps_its_short_link_whole_within_one_segment(neutral: bool) -> None:
    from attune_contracts.messages import ChannelKind
    from attune_notifier.links import ActionLinks
    from attune_notifier.service import render

    short = f"{PUBLIC_URL}/s/AbCdEfGhJkLm"
    links = ActionLinks({LinkAction.DONE: f"{PUBLIC_URL}/l/long-token"}, short=short)
    long_prompt = {"ritual": "Date night", "prompt": "word " * 60, "when": "19:00 on Friday"}
    plain = render("ritual_reminder", long_prompt, ChannelKind.SMS, neutral=neutral, link=links).body
    assert plain.endswith(f" Done? {short}") and len(plain) <= 160 and "/l/" not in plain
    emoji = render("ritual_due", {**long_prompt, "ritual": "Date night \U0001F49B", "prompt": "word " * 30},
                   ChannelKind.SMS, neutral=neutral, link=links).body
    assert emoji.endswith(f" Done? {short}") and len(emoji) <= (160 if neutral else 70)
