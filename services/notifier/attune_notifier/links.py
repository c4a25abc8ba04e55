"""The one-tap links a message about a ritual's occurrence carries: Done, Skip and Snooze.

Push and email carry all three (Apprise's notify has no per-message action buttons, so they are lines of
the body, "Done: <url>", and links in the email's HTML); an SMS carries one short Done link when one could be
issued (`short`), so the message still fits one segment. The signed tokens are minted here
(attune_contracts.links) and verified by the check-ins service, which also shows what a link tapped before its
ritual means (a reminder's link works from the ritual's time until it expires).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from attune_contracts import content as words
from attune_contracts.links import LinkAction, LinkSigner

# How long a link works after it is sent; a reminder's link works this long after its ritual's time too
# (the day-before date-night reminder is tapped after the date).
LINK_TTL = timedelta(hours=36)
ACTIONS = (LinkAction.DONE, LinkAction.SKIP, LinkAction.SNOOZE)
# The words before each link in a text body ("Done: <url>"; the dev inbox turns these lines into buttons), the
# email's link texts and the SMS's label: catalog texts, translated into the reader's language (`tr`).
LABELS = {action: words.ACTION_LABELS[action.value] for action in ACTIONS}
HTML_LABELS = {action: words.ACTION_HTML_LABELS[action.value] for action in ACTIONS}
SMS_LABEL = words.SMS_LINK_LABEL


def _same(text: str) -> str:
    return text


@dataclass(frozen=True)
class ActionLinks:
    """A message's links, in the order offered; `short` is the SMS's short Done link, if any."""

    urls: Mapping[LinkAction, str] = field(default_factory=dict)
    short: str | None = None
    done_token: str | None = None  # what an SMS's short link stands for, and until when
    expires_at: datetime | None = None

    @classmethod
    def of(cls, value: str | ActionLinks | None) -> ActionLinks | None:
        """A single URL is a Done link (what callers that know one link pass)."""
        if value is None or isinstance(value, ActionLinks):
            return value
        return cls({LinkAction.DONE: value})

    def text(self, tr: Callable[[str], str] = _same) -> str:
        return "\n".join(f"{tr(LABELS[action])}: {url}" for action, url in self.urls.items())

    def html(self, tr: Callable[[str], str] = _same) -> str:
        anchors = " · ".join(f'<a href="{html.escape(url)}">{html.escape(tr(HTML_LABELS[action]))}</a>'
                             for action, url in self.urls.items())
        return f"<p>{anchors}</p>" if anchors else ""

    def sms_suffix(self, tr: Callable[[str], str] = _same) -> str:
        return f" {tr(SMS_LABEL)} {self.short}" if self.short else ""


def fit_links(body: str, link_text: str, limit: int) -> str:
    """`body` (words, then its `link_text` lines) within a gateway's `limit` in characters: three links are
    about 1,100 characters, over Pushover's 1,024. The words stay whole and links are left out from the last
    (Snooze, then Skip) until it fits; a link is never cut, so what is left still works."""
    if len(body) <= limit or not link_text or not body.endswith(link_text):
        return body
    words, lines = body[: -len(link_text)], link_text.split("\n")
    while lines and len(words) + len("\n".join(lines)) > limit:
        lines.pop()
    return words + "\n".join(lines) if lines else words.rstrip("\n")


def link_ttl(purpose: str, expires_at: datetime | None, now: datetime) -> timedelta:
    """A ritual reminder's links live until LINK_TTL after the ritual's time (`expires_at` of a reminder is
    its ritual's time); any other message's links LINK_TTL from now."""
    if purpose == "ritual_reminder" and expires_at is not None:
        return max(LINK_TTL, expires_at + LINK_TTL - now)
    return LINK_TTL


class LinkMaker:
    """Mints a message's links: one token per action, each for this member and occurrence."""

    def __init__(self, signer: LinkSigner, public_url: str) -> None:
        self.signer, self.public_url = signer, public_url.rstrip("/")

    def tokens(self, *, household_id: UUID, occurrence_id: UUID, member_id: UUID, ttl: timedelta,
               now: datetime, locale: str | None = None) -> dict[LinkAction, str]:
        """`locale`: the reader's, so the page a link opens speaks the message's language."""
        return {action: self.signer.mint(household_id=household_id, occurrence_id=occurrence_id,
                                         member_id=member_id, action=action, ttl=ttl, now=now, locale=locale)
                for action in ACTIONS}

    def url(self, token: str) -> str:
        return f"{self.public_url}/l/{token}"

    def short_url(self, code: str) -> str:
        return f"{self.public_url}/s/{code}"
