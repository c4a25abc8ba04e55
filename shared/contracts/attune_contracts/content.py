"""Every word Attune sends, in one place, and in every language it speaks.

Per ritual and per reader (partner, parent, child): `ritual_words`. Per situation (reminder ahead, due,
partner kept it, missed, streak milestone, ratio nudge, weekly summary, ...) and per channel (push title
and body, SMS, email subject and HTML): `SITUATIONS`. The weekly summary's focus on one of the article's
steps: `FOCUS_STEPS`. The ritual templates themselves (titles, prompts, the article's "why" in
`long_prompt`) and the question bank stay in `catalog`; this module gives them their readers, channels
and languages.

Every English text here is a gettext msgid: `translator(locale)` turns it into the member's language
through the gettext catalog `locale/<lang>/LC_MESSAGES/attune.po` (Babel reads and compiles the .po when
first used, so there is no build step and no .mo to go stale). A text that is not a msgid (a ritual a
household renamed, a partner's name, a dream) passes through unchanged. `python -m attune_contracts.content`
adds new msgids to every .po file (empty, for a translator); tests/contracts/test_content_catalog.py fails
while one lacks its translation or a text is over its channel's limit.

Times and dates follow the member's locale (`format_when`, `format_day`): en_US reads "7:00 PM on Friday",
en_GB "19:00 on Friday", de "Freitag um 19:00". A member's locale is a notifier delivery preference (see
the notifier's PUT /v1/members/{id}/preferences); a member who never chose one reads `DEFAULT_LOCALE`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from . import catalog

__all__ = [
    "CHILD_DEFAULT", "CHILD_WORDS", "DEFAULT_LOCALE", "FOCUS_STEPS", "LANGUAGES", "LIMITS", "LINK_PAGE",
    "SITUATIONS", "RitualWords", "Situation", "cadence_of", "format_day", "format_moment", "format_when", "msgids",
    "normalise_locale", "ritual_words", "translator",
]

SOURCE_LANGUAGE = "en"
DEFAULT_LOCALE = "en_GB"
"""A member with no locale of their own: English words, a 24-hour clock (what Attune always sent)."""
LANGUAGES: tuple[str, ...] = ("en", "de")
"""Languages with a complete catalog (English is the source). A member's other locale falls back to English
words, still with that locale's own time and date formats."""
LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "attune"

# What a channel can show (characters, after the parameters are filled in). A push must read whole on the
# tightest common lock screen, iOS: one line of title (about 50 characters) and about four lines of body (about
# 178); Android's collapsed view shows less, its expanded one 65 and 240. The gateways allow far more (Pushover
# 250 and 1024, ntfy and Web Push about 4 KB), so these are the limits that matter. An SMS segment holds 160 GSM-7
# characters.
LIMITS: dict[str, int] = {"title": 50, "body": 178, "sms": 160, "subject": 150}


def _(text: str) -> str:
    """Marks a msgid; the translation happens when a message is rendered (`translator`)."""
    return text


# ---- people and rituals ---------------------------------------------------------------------------

NEUTRAL_TITLE = _("A moment for the two of you")
NEUTRAL_BODY = _("Open Attune when you have a minute.")
GENERIC_PROMPT = _("A small moment for the two of you.")
UNNAMED_RITUAL = _("Your ritual")
YOUR_PARTNER = _("Your partner")
SOMEONE = _("Someone")
SOON = _("soon")
WHEN = _("{time} on {weekday}")
WHY_HEADING = _("Why it helps")
LINK_LABEL = _("Mark it done")
# The one-tap links of a message about a ritual (Done / Skip / Snooze): the word before each link in a text
# body ("Done: <url>"), the email's link text, and the label of an SMS's short Done link.
ACTION_LABELS = {"done": _("Done"), "skip": _("Skip"), "snooze": _("Snooze")}
ACTION_HTML_LABELS = {"done": LINK_LABEL, "skip": _("Skip this time"), "snooze": _("Remind me later")}
SMS_LINK_LABEL = _("Done?")
UNITS = {"day": _("day"), "days": _("days"), "week": _("week"), "weeks": _("weeks")}


@dataclass(frozen=True)
class RitualWords:
    """A ritual as one reader hears it: `why` is the article's reason, for the email version (None: none)."""

    title: str
    prompt: str
    why: str | None = None
    discreet_title: str | None = None
    sensitive: bool = False


# What a child reads instead of the adults' words (warm, simple, nothing intimate): a ritual that admits
# children has its own entry; any other gets CHILD_DEFAULT.
CHILD_WORDS: dict[str, tuple[str, str]] = {
    "parent_child_attunement": (_("Time together"), _("A few cosy minutes with your grown-up: tell them about your day!")),
}
CHILD_DEFAULT = (_("Time together"), _("A little time together with your family."))


def ritual_words(template: str, role: str = "partner") -> RitualWords:
    """The words of a ritual template for one reader (`role`: partner, parent or child), as msgids."""
    if role == "child":
        title, prompt = CHILD_WORDS.get(template, CHILD_DEFAULT)
        return RitualWords(title, prompt)
    known = catalog.template(template)
    if known is None:
        return RitualWords(UNNAMED_RITUAL, GENERIC_PROMPT)
    return RitualWords(known.title, known.short_prompt, known.long_prompt, known.discreet_title, known.sensitive)


# ---- a missed ritual's next chance, by its cadence ----------------------------------------------

NEXT_CHANCE: dict[str | None, dict[str, str]] = {
    "daily": {"next_time": _("tomorrow"), "span": _(" today"), "next_chance": _("Tomorrow is another chance.")},
    "weekly": {"next_time": _("next week"), "span": _(" this week"),
               "next_chance": _("Next week is another chance.")},
    None: {"next_time": _("next time"), "span": "", "next_chance": _("There's always a next time.")},
}


def cadence_of(rrule: str | None) -> str | None:
    """"daily" or "weekly" from an RFC 5545 RRULE; None when it is neither plainly (weekdays only, every other
    week, on demand): the words then say "next time"."""
    if not rrule:
        return None
    parts = dict(p.split("=", 1) for p in rrule.upper().split(";") if "=" in p)
    if parts.get("INTERVAL", "1") != "1":
        return None
    days = [d for d in parts.get("BYDAY", "").split(",") if d]
    if (parts.get("FREQ") == "DAILY" and not days) or (parts.get("FREQ") == "WEEKLY" and len(days) == 7):
        return "daily"
    if parts.get("FREQ") == "WEEKLY" and len(days) == 1:
        return "weekly"
    return None


def default_cadence(template: str) -> str | None:
    """The cadence of a template's default rhythm (for a RitualMissed that does not carry its own)."""
    known = catalog.template(template)
    return cadence_of(known.rhythm.rrule if known is not None and known.rhythm is not None else None)


# ---- the weekly summary's focus: one of the article's steps -----------------------------------------

FOCUS_STEPS: dict[int, tuple[str, str]] = {
    1: (_("Tune in to each other's feelings"),
        _("Once a day, let your partner talk without interrupting. Reflect what you hear (\"that sounds hard\"), "
          "then ask an open question such as \"how did that feel?\" or \"what would help next?\".")),
    2: (_("Keep dating"),
        _("Put one date night in the calendar this week and protect it. When you part and meet again, try a "
          "kiss that lasts at least six seconds.")),
    3: (_("Try something new together"),
        _("Pick one small new thing to try together this week, and talk afterwards about what you both enjoyed.")),
    4: (_("Stay close afterwards"),
        _("Take a few unhurried minutes to stay close, cuddle and say something kind before getting on with "
          "the day.")),
    5: (_("Stay curious"),
        _("Ask one open question a day and listen for the whole answer; follow up before you share your own "
          "view.")),
    6: (_("Invest in each other's dreams"),
        _("Ask about one dream your partner has, offer one concrete way to support it, and celebrate any "
          "progress.")),
}
SENSITIVE_FOCUS_TEXT = _("One of your rituals could use a little care this week. Open Attune to see which.")


# ---- situations, per channel -------------------------------------------------------------------------


@dataclass(frozen=True)
class Situation:
    """One message in every channel's shape: `title`/`body` a push, `sms` one segment once filled in,
    `subject`/`html` an email (whose plain-text part is `body`). `str.format` patterns over named parameters."""

    title: str
    body: str
    sms: str
    subject: str
    html: str


SITUATIONS: dict[str, Situation] = {
    "ritual_due": Situation(
        title=_("{ritual}"),
        body=_("{prompt}"),
        sms=_("Attune: {ritual}. {prompt}"),
        subject=_("{ritual}"),
        html=_("<p>{prompt}</p>"),
    ),
    "ritual_reminder": Situation(
        title=_("Coming up: {ritual}"),
        body=_("{ritual} is at {when}. {prompt}"),
        sms=_("Attune: {ritual} at {when}."),
        subject=_("Coming up: {ritual} at {when}"),
        html=_("<p><strong>{ritual}</strong> is at {when}.</p><p>{prompt}</p>"),
    ),
    "partner_checkin": Situation(
        title=_("{name} kept {ritual}"),
        body=_("{name} just checked in for {ritual}. A good moment to join in."),
        sms=_("Attune: {name} kept {ritual}."),
        subject=_("{name} kept {ritual}"),
        html=_("<p>{name} just checked in for <strong>{ritual}</strong>. A good moment to join in.</p>"),
    ),
    "missed_nudge": Situation(  # next_time, span, next_chance: by the ritual's cadence (NEXT_CHANCE)
        title=_("{ritual}: see you {next_time}"),
        body=_("{ritual} slipped by{span}, and that's fine. {next_chance}"),
        sms=_("Attune: {ritual} slipped by{span}. {next_chance}"),
        subject=_("{ritual}: see you {next_time}"),
        html=_("<p><strong>{ritual}</strong> slipped by{span}, and that's fine. {next_chance}</p>"),
    ),
    "milestone": Situation(
        title=_("{length} {unit} of {ritual}"),
        body=_("You have kept {ritual} for {length} {unit} in a row. Worth celebrating together."),
        sms=_("Attune: {length} {unit} of {ritual} in a row!"),
        subject=_("{length} {unit} of {ritual}"),
        html=_("<p>You have kept <strong>{ritual}</strong> for {length} {unit} in a row.</p>"),
    ),
    "ratio_dropped": Situation(
        title=_("A nudge toward warmth"),
        body=_("Lately: {positive} warm moments to {negative} hard ones. Aim for five to one; a thank-you counts."),
        sms=_("Attune: {positive} warm moments to {negative} hard ones lately. A thank-you counts."),
        subject=_("A nudge toward warmth"),
        html=_("<p>Over the last {window_days} days: {positive} warm moments to {negative} hard ones.</p>"
               "<p>Aim for five warm moments for each hard one. A thank-you counts.</p>"),
    ),
    "achievement": Situation(
        title=_("{name} moved a dream forward"),
        body=_("{name} made progress on \u201c{dream}\u201d. Celebrate it together!"),
        sms=_("Attune: {name} made progress on \u201c{dream}\u201d. Celebrate it!"),
        subject=_("{name} moved a dream forward"),
        html=_("<p>{name} made progress on <strong>{dream}</strong>. Celebrate it together!</p>"),
    ),
    "weekly_summary": Situation(
        title=_("Your week together"),
        body=_("{kept} of {expected} rituals kept this week. Focus: {focus_title}."),
        sms=_("Attune: {kept} of {expected} rituals kept this week. Focus: {focus_title}."),
        subject=_("Your week together: {week_start} to {week_end}"),
        html=_("<h2>Your week together</h2><p>{week_start} to {week_end}</p>{tally_rows}"
               "<p>Date nights in the last four weeks: {date_nights_kept} of {date_nights_expected}.</p>"
               "<p>Moments: {positive} warm, {negative} hard.</p><h3>{focus_title}</h3><p>{focus_text}</p>"),
    ),
    "request": Situation(  # another service's own words: passed through as they came
        title="{title}", body="{body}", sms="{body}", subject="{title}", html="<p>{body}</p>",
    ),
}
TALLY_ROW = _("{kept} of {expected}")

# The parameters whose values are catalog words (msgids) that a render translates; the rest (names, dreams,
# counts) are shown as they are.
TRANSLATED_PARAMS = frozenset({"ritual", "prompt", "discreet_title", "next_time", "span", "next_chance",
                               "focus_title", "focus_text", "unit"})


# ---- the one-tap link pages (the check-ins service shows them) -----------------------------------------

# What a person reads after tapping a Done / Skip / Snooze link or an SMS's short link, in the language of the
# message the link came in (the token carries its reader's locale). Keyed for the page code; the values are
# msgids like every other text. Placeholders: {when}, {until} (format_moment), {ritual} (the page's own
# markup), {closeness}, {n}.
LINK_PAGE: dict[str, str] = {
    # titles
    "failed": _("That didn't work"),
    "not_recorded": _("We couldn't record that"),
    "try_again": _("Please try again in a moment"),
    "wait": _("Please wait a moment"),
    "unusable": _("This link can't be used"),
    "expired_title": _("This link has expired"),
    "used_title": _("Already recorded"),
    "done_title": _("Nice one!"),
    "skip_title": _("Not this time?"),
    "snooze_title": _("Later, then"),
    "coming_title": _("Coming up"),
    "recorded_title": _("Recorded. Thank you!"),
    "bad_rating_title": _("That rating didn't work"),
    "closed_title": _("This one has closed"),
    "question": _("Today's question:"),
    # why a link records nothing (the sentences of attune_contracts.links and of the check-ins service)
    "damaged": _("This link is damaged. Open the reminder again and tap its button, or check in from the app."),
    "incomplete": _("This link is incomplete. Open it again from the original message."),
    "unreadable": _("This link does not say what to record."),
    "unknown_key": _("This link was signed with a key we no longer use. Please use a newer message."),
    "outdated": _("This reminder's link is from an older version of Attune and no longer works. The next "
                  "reminder's links will work."),
    "forged": _("This link has been changed or was not made by Attune."),
    "expired": _("This link has expired. The next reminder will bring fresh links."),
    "used": _("This link has already been used; your answer was recorded then. Thank you!"),
    "unknown_occurrence": _("We could not find this ritual any more."),
    "unknown_short_link": _("We don't know this short link. It may be mistyped, or so old that it has been tidied "
                            "away."),
    "bad_rating": _("Closeness is a number from 1 to 5."),
    "closed": _("Check-ins for it were open until {when}. The next reminder will bring fresh links."),
    "unavailable": _("Check-ins can't be saved right now, so nothing was recorded. Please try again in a moment."),
    "unstorable": _("A value in this link cannot be stored, so nothing was recorded."),
    "open_again": _("Open the link again from the reminder."),
    # asking
    "rate": _("Tap how close you felt, and we'll record it as done:"),
    "rate_label": _("closeness {n} of 5"),
    "just_done": _("Just mark it done"),
    "confirm_skip": _("This will record it as skipped this time."),
    "confirm_snooze": _("This will record it as snoozed for now."),
    "confirm": _("Confirm"),
    # before its ritual: when this same link will work
    "coming_done": _("Keep this message: from {when} this same link lets you check in. It works until {until}."),
    "coming_skip": _("Keep this message: from {when} this same link lets you skip it this time. It works until "
                     "{until}."),
    "coming_snooze": _("Keep this message: from {when} this same link lets you ask to be reminded a little later. "
                       "It works until {until}."),
    "opening": _("It is just opening for check-ins. Please try this link again in a minute or two; it works until "
                 "{until}."),
    # what is recorded
    "nothing_yet": _("Nothing is recorded for you yet."),
    "state_done": _("It is recorded as done."),
    "state_skipped": _("It is recorded as skipped this time."),
    "state_snoozed": _("It is recorded as snoozed."),
    "closeness": _("Closeness: {closeness} of 5."),
    "recorded_done": _("{ritual} is recorded as done."),
    "recorded_skip": _("{ritual} is recorded as skipped this time."),
    "recorded_snooze": _("{ritual} is recorded as snoozed for now."),
    "close_page": _("You can close this page."),
}


# ---- languages -------------------------------------------------------------------------------------------


@lru_cache(maxsize=256)  # every render asks; a member's locale is one of a few
def known_locale(value: str | None) -> str | None:
    """A locale as Babel spells it ("de-DE" -> "de_DE"), or None when CLDR does not know it."""
    if not value:
        return None
    try:
        return str(Locale.parse(value.replace("-", "_")))
    except (ValueError, TypeError, UnknownLocaleError):
        return None


def normalise_locale(value: str | None) -> str:
    """A member's locale as Babel spells it; DEFAULT_LOCALE for none or an unknown one."""
    return known_locale(value) or DEFAULT_LOCALE


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=16)
def _translations(language: str) -> NullTranslations:
    path = po_path(language)
    if language == SOURCE_LANGUAGE or not path.exists():
        return NullTranslations()
    with path.open("rb") as fp:
        po = read_po(fp, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, po)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


@lru_cache(maxsize=256)
def translator(locale: str | None) -> Callable[[str], str]:
    """gettext for a member's locale: a msgid in their language, anything else unchanged."""
    gettext = _translations(Locale.parse(normalise_locale(locale)).language).gettext
    # gettext("") is the catalog's header, never a word: an empty text (a missed ritual's span) stays empty.
    return lambda text: gettext(text) if text else text


def _plain(text: str) -> str:
    # CLDR puts narrow no-break spaces in times ("7:00\u202fPM"): not in SMS's alphabet, and no help elsewhere.
    return text.replace("\u202f", " ").replace("\u00a0", " ")


def format_when(local: datetime, locale: str | None) -> str:
    """A ritual's local time and weekday in the member's words and clock: "7:00 PM on Friday", "Freitag um 19:00"."""
    loc = normalise_locale(locale)
    return translator(loc)(WHEN).format(time=_plain(format_time(local, "short", locale=loc)),
                                        weekday=format_date(local, "EEEE", locale=loc))


def format_moment(local: datetime, locale: str | None) -> str:
    """A local time with its full date, for a page: "7:00 PM on Friday, December 4, 2026", "19:00 on Friday,
    4 December 2026", "Freitag, 4. Dezember 2026 um 19:00"."""
    loc = normalise_locale(locale)
    return translator(loc)(WHEN).format(time=_plain(format_time(local, "short", locale=loc)),
                                        weekday=_plain(format_date(local, "full", locale=loc)))


def format_day(day: date, locale: str | None) -> str:
    """A date as the member's locale writes it: "16 November 2026", "November 16, 2026", "16. November 2026"."""
    return _plain(format_date(day, "long", locale=normalise_locale(locale)))


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def msgids() -> Iterator[str]:
    """Every text a member may read, once each, in a stable order: what every language must translate."""
    seen: set[str] = set()
    texts: list[str] = [NEUTRAL_TITLE, NEUTRAL_BODY, GENERIC_PROMPT, UNNAMED_RITUAL, YOUR_PARTNER, SOMEONE, SOON,
                        WHEN, WHY_HEADING, LINK_LABEL, SENSITIVE_FOCUS_TEXT, TALLY_ROW, *UNITS.values(),
                        *ACTION_LABELS.values(), *ACTION_HTML_LABELS.values(), SMS_LINK_LABEL, *LINK_PAGE.values()]
    for t in catalog.TEMPLATES.values():
        texts += [t.title, t.short_prompt, t.long_prompt] + ([t.discreet_title] if t.discreet_title else [])
    for title, prompt in (*CHILD_WORDS.values(), CHILD_DEFAULT):
        texts += [title, prompt]
    for words in NEXT_CHANCE.values():
        texts += list(words.values())
    for title, text in FOCUS_STEPS.values():
        texts += [title, text]
    for key, situation in SITUATIONS.items():
        if key != "request":
            texts += [getattr(situation, f.name) for f in fields(Situation)]
    texts += list(catalog.CURIOSITY_QUESTIONS)
    for question in catalog.CHILD_QUESTIONS:
        texts += [question, catalog.parent_asks(question)]
    for text in texts:
        if text and text not in seen and text.strip():
            seen.add(text)
            yield text


def catalog_problems(language: str, path: Path | None = None) -> list[str]:
    """What keeps a language's catalog from being complete: a msgid with no translation (or only a fuzzy one),
    a translation that drops or invents a {placeholder}, an entry for a text no longer used. Empty: complete."""
    path = path or po_path(language)
    if not path.exists():
        return [f"{path}: no catalog for {language!r}"]
    with path.open("rb") as fp:
        po = read_po(fp, locale=language, domain=DOMAIN)
    problems = []
    wanted = list(msgids())
    for text in wanted:
        entry = po.get(text)
        if entry is None or not entry.string or entry.fuzzy:
            problems.append(f"{language}: no translation of {text!r}")
        elif not isinstance(entry.string, str) or placeholders(entry.string) != placeholders(text):
            problems.append(f"{language}: {text!r} -> {entry.string!r} changes the placeholders")
    problems += [f"{language}: {entry.id!r} is no longer used" for entry in po
                 if entry.id and entry.id not in set(wanted)]
    return problems


def update_po_files() -> list[Path]:
    """Adds every new msgid to each language's .po file (empty, to be translated) and marks the ones no longer
    used as obsolete. Run `python -m attune_contracts.content` after changing any words here or in `catalog`."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    template = Catalog(domain=DOMAIN, project="Attune", charset="utf-8")
    for text in msgids():
        template.add(text)
    written = []
    for language in LANGUAGES:
        if language == SOURCE_LANGUAGE:
            continue
        path = po_path(language)
        if path.exists():
            with path.open("rb") as fp:
                po = read_po(fp, locale=language, domain=DOMAIN)
        else:
            po = Catalog(locale=language, domain=DOMAIN, project="Attune", charset="utf-8")
        po.update(template, no_fuzzy_matching=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fp:
            write_po(fp, po, width=110, omit_header=False, sort_output=False)
        written.append(path)
    _translations.cache_clear()
    return written


if __name__ == "__main__":
    for written_path in update_po_files():
        print(written_path)
