"""The one-tap link pages in their reader's language (issue 15): the notifier puts the reader's locale in each
link's token, so the page a German member opens (coming up, confirm, recorded, already used, expired, and the
refusals) is German with a German date and clock; a link that says nothing (damaged, an unknown short link)
follows the browser's Accept-Language. Through the real service and store, over HTTP."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from uuid import uuid4

import httpx
import pytest
from attune_contracts import content as words
from attune_contracts.links import LinkAction

from .conftest import Api
from .test_checkins_reminder_links import date_night, issue_short_link

pytestmark = [pytest.mark.unit]

FORM = {"content-type": "application/x-www-form-urlencoded"}
GERMAN = words.translator("de_DE")
# The longest fixed part of each page text whose German differs: seeing it on a German page is a miss.
ENGLISH_ONLY = [max(re.split(r"\{\w+\}", text), key=len).strip() for text in words.LINK_PAGE.values()
                if GERMAN(text) != text]


def german_page(response: httpx.Response) -> str:
    """The page's visible text, after checking that it is German throughout."""
    assert response.headers["content-type"].startswith("text/html"), response.text
    assert '<html lang="de">' in response.text and response.headers["content-language"] == "de"
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", response.text)).split())
    leaked = [english for english in ENGLISH_ONLY if english in text]
    assert leaked == [], text
    return text


async def test_a_german_members_link_pages_are_german_from_the_evening_before_to_after_the_date(api: Api) -> None:
    at = api.h.clock.now() + timedelta(days=1)
    reminder, due = date_night(api, at)
    await api.h.send(reminder)
    # A reminder's links live until 36 hours after its ritual (the notifier's link_ttl).
    done, skip = (api.mint(action, occurrence=due.occurrence_id, locale="de_DE", ttl=timedelta(days=2, hours=12))
                  for action in (LinkAction.DONE, LinkAction.SKIP))

    api.h.clock.advance(hours=3)  # the evening before
    coming = german_page(await api.client.get(f"/l/{done}"))
    assert "Bald ist es so weit" in coming and "Date-Abend" in coming  # the title and the ritual, in German
    assert "Heb diese Nachricht auf: Ab " in coming and "kannst du mit diesem Link einchecken" in coming
    weekday = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")
    assert any(f"{day}, " in coming for day in weekday) and " um " in coming, coming  # "Freitag, 3. März 2027 um 20:30"
    assert re.search(r"um \d{2}:\d{2}", coming) and " PM" not in coming and " AM" not in coming
    assert "auslassen" in german_page(await api.client.get(f"/l/{skip}"))

    await api.h.send(due, occurred_at=at)
    api.h.clock.set(at + timedelta(hours=3))
    confirm = await api.client.get(f"/l/{done}")
    text = german_page(confirm)
    assert "Wie schön!" in text and "Einfach als erledigt eintragen" in text
    assert 'aria-label="Nähe 4 von 5"' in confirm.text
    skipping = german_page(await api.client.get(f"/l/{skip}"))
    assert "Diesmal nicht?" in skipping and "Bestätigen" in skipping

    recorded = german_page(await api.client.post(f"/l/{done}", content="closeness=4", headers=FORM))
    assert "Eingetragen. Danke!" in recorded and "Date-Abend ist als erledigt eingetragen. Nähe: 4 von 5." in recorded
    again = await api.client.get(f"/l/{done}")
    assert again.status_code == 409
    used = german_page(again)
    assert "Schon eingetragen" in used and "Eingetragen: erledigt. Nähe: 4 von 5." in used

    api.h.clock.set(due.deadline + timedelta(minutes=5))  # the skip link, never used, after the deadline
    closed = await api.client.post(f"/l/{skip}", content="", headers=FORM)
    assert closed.status_code == 410
    text = german_page(closed)
    assert "Dieses Mal ist schon vorbei" in text and "Einchecken ging bis Mittwoch, 3. März 2027 um " in text, text

    api.h.clock.set(at + timedelta(days=3))  # the skip link, never used, has expired
    expired = await api.client.get(f"/l/{skip}")
    assert expired.status_code == 410
    text = german_page(expired)
    assert "Dieser Link ist abgelaufen" in text and "Eingetragen: erledigt." in text


async def test_the_same_pages_in_english_keep_the_readers_clock(api: Api) -> None:
    at = api.h.clock.now() + timedelta(days=1)
    reminder, due = date_night(api, at)
    await api.h.send(reminder)
    for locale, clock in (("en_US", r"\d{1,2}:\d{2} [AP]M on "), ("en_GB", r"\d{2}:\d{2} on ")):
        page = await api.client.get(f"/l/{api.mint(occurrence=due.occurrence_id, locale=locale)}")
        assert '<html lang="en">' in page.text and "Coming up" in page.text and "Keep this message" in page.text
        assert re.search(clock, page.text), page.text
    # A locale with no catalog reads English words (lang="en") with its own dates, as its messages do.
    french = await api.client.get(f"/l/{api.mint(occurrence=due.occurrence_id, locale='fr_FR')}")
    assert '<html lang="en">' in french.text and "Keep this message" in french.text and "mars" in french.text
    old = await api.client.get(f"/l/{api.mint(occurrence=due.occurrence_id)}")  # a token from before 1.2.0
    assert old.status_code == 200 and "Coming up" in old.text


async def test_a_link_to_a_ritual_no_longer_known_says_so_in_german(api: Api) -> None:
    gone = await api.client.get(f"/l/{api.mint(occurrence=uuid4(), locale='de_DE')}")
    assert gone.status_code == 404 and "Wir konnten dieses Ritual nicht mehr finden." in german_page(gone)


async def test_a_short_link_leads_to_the_page_in_its_readers_language(api: Api) -> None:
    code = await issue_short_link(api, api.mint(locale="de_DE"))
    hop = await api.client.get(f"/s/{code}", headers={"accept-language": "en-US"})
    page = german_page(await api.client.get(hop.headers["location"]))  # the token's language, not the browser's
    assert "Wie schön!" in page


@pytest.mark.parametrize(("accept", "german"), [("de-DE,de;q=0.9,en;q=0.5", True), ("fr-CH, de;q=0.8", True),
                                                ("fr", False), ("", False), ("*;q=0.1, xx-?!", False)])
async def test_a_link_that_says_nothing_follows_the_browsers_language(api: Api, accept: str, german: bool) -> None:
    headers = {"accept-language": accept}
    unknown = await api.client.get("/s/" + "A" * 12, headers=headers)  # well formed, never issued
    damaged = await api.client.get("/l/k1." + "x" * 40, headers=headers)
    assert unknown.status_code == 404 and damaged.status_code == 400
    if german:
        assert "Diesen Kurzlink kennen wir nicht" in german_page(unknown)
        assert "Dieser Link wurde verändert oder stammt nicht von Attune." in german_page(damaged)
    else:
        assert '<html lang="en">' in unknown.text and "We don&#x27;t know this short link" in unknown.text
        assert "This link has been changed" in damaged.text


def test_every_link_page_text_has_its_german() -> None:
    for key, text in words.LINK_PAGE.items():
        german = GERMAN(text)
        assert german != text and german.strip(), f"{key}: {text!r} has no German"
        assert words.placeholders(german) == words.placeholders(text), key
