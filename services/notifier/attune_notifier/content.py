"""The words: ritual prompts, the curiosity question bank and message templates, all as data.

Ritual prompts and the question bank come from `attune_contracts.catalog` when that module exists
(the scheduler owns it); until then, and for anything it lacks, the fallback below is used.
Templates are `str.format` patterns over named parameters; HTML templates get escaped values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NEUTRAL_TITLE = "A moment for the two of you"
NEUTRAL_BODY = "Open Attune when you have a minute."


@dataclass(frozen=True)
class RitualContent:
    title: str
    prompt: str
    sensitive: bool = False
    # How long after its scheduled time a "due" message is still worth sending (None: until the deadline).
    relevant_minutes: int | None = None


FALLBACK_RITUALS: dict[str, RitualContent] = {
    "evening_attunement": RitualContent(
        "Evening check-in", "Ask how their day really was, then just listen. \"That sounds hard\" goes a long way."),
    "date_night": RitualContent(
        "Date night", "Your weekly date night: phones away, time for each other.", relevant_minutes=180),
    "six_second_kiss": RitualContent(
        "Six-second kiss", "Before you part or when you meet again, make the kiss last six seconds.",
        relevant_minutes=120),
    "try_something_new": RitualContent(
        "Something new together", "Pick one new thing to try together this week.", sensitive=True),
    "after_connection": RitualContent(
        "Stay close", "Stay close a little longer: talk, hold each other, say something kind.", sensitive=True),
    "curiosity_question": RitualContent("Today's question", "Ask today's question and listen for the answer."),
    "dreams": RitualContent(
        "Invest in a dream", "Ask about one dream your partner has, and one small way you can help."),
    "parent_child_attunement": RitualContent(
        "Listening time", "Put the phone down, listen, and name the feeling: \"It's OK to feel that way.\""),
}

FALLBACK_QUESTIONS: tuple[str, ...] = (
    "What made you smile today?",
    "What is something you are looking forward to this month?",
    "When did you feel most like yourself this week?",
    "What is a small thing I do that you appreciate?",
    "What is on your mind that you have not said out loud yet?",
    "If we had a free Saturday with no plans, how would you spend it?",
    "What is a memory of us you return to often?",
    "What is something you would like to learn this year?",
    "What felt heavy this week, and what helped?",
    "What is one dream you have not told me much about?",
    "How did that conversation at work make you feel?",
    "What would make tomorrow a good day for you?",
)


def _catalog() -> Any | None:
    try:
        from attune_contracts import catalog  # type: ignore[attr-defined]
    except ImportError:
        return None
    return catalog


def ritual_content(template: str, *, title: str | None = None, sensitive: bool | None = None) -> RitualContent:
    """The words for a ritual template; the event's own title and sensitivity win when given."""
    base = FALLBACK_RITUALS.get(template)
    catalog = _catalog()
    if catalog is not None:
        found = _from_catalog(catalog, template)
        if found is not None:
            base = found if base is None else RitualContent(
                found.title, found.prompt, found.sensitive, found.relevant_minutes or base.relevant_minutes)
    if base is None:
        base = RitualContent(title or "Your ritual", "A small moment for the two of you.")
    return RitualContent(
        title or base.title, base.prompt, base.sensitive if sensitive is None else (sensitive or base.sensitive),
        base.relevant_minutes,
    )


def _from_catalog(catalog: Any, template: str) -> RitualContent | None:
    templates = getattr(catalog, "TEMPLATES", None) or getattr(catalog, "RITUAL_TEMPLATES", None)
    getter = getattr(catalog, "template", None) or getattr(catalog, "get_template", None)
    entry = None
    try:
        if isinstance(templates, dict):
            entry = templates.get(template)
        elif callable(getter):
            entry = getter(template)
    except Exception:  # noqa: BLE001 - an unexpected catalog shape falls back to our own words
        entry = None
    if entry is None:
        return None
    title = _field(entry, "title")
    prompts = _field(entry, "prompts") or _field(entry, "prompt")
    prompt = prompts[0] if isinstance(prompts, (list, tuple)) and prompts else prompts
    if not isinstance(title, str) or not isinstance(prompt, str):
        return None
    return RitualContent(title, prompt, bool(_field(entry, "sensitive")), None)


def _field(entry: Any, name: str) -> Any:
    return entry.get(name) if isinstance(entry, dict) else getattr(entry, name, None)


def question_bank() -> tuple[str, ...]:
    catalog = _catalog()
    if catalog is not None:
        for name in ("QUESTION_BANK", "CURIOSITY_QUESTIONS", "QUESTIONS"):
            bank = getattr(catalog, name, None)
            if isinstance(bank, (list, tuple)) and bank:
                return tuple(q if isinstance(q, str) else str(_field(q, "text")) for q in bank)
    return FALLBACK_QUESTIONS


@dataclass(frozen=True)
class Template:
    """One message in every shape. `sms` should fit one segment once filled in."""

    title: str
    body: str
    sms: str
    subject: str
    html: str


TEMPLATES: dict[str, Template] = {
    "ritual_due": Template(
        title="{ritual}",
        body="{prompt}",
        sms="Attune: {ritual}. {prompt}",
        subject="{ritual}",
        html="<p>{prompt}</p>",
    ),
    "ritual_reminder": Template(
        title="Coming up: {ritual}",
        body="{ritual} is at {when}. {prompt}",
        sms="Attune: {ritual} at {when}.",
        subject="Coming up: {ritual} at {when}",
        html="<p><strong>{ritual}</strong> is at {when}.</p><p>{prompt}</p>",
    ),
    "partner_checkin": Template(
        title="{name} kept {ritual}",
        body="{name} just checked in for {ritual}. A good moment to join in.",
        sms="Attune: {name} kept {ritual}.",
        subject="{name} kept {ritual}",
        html="<p>{name} just checked in for <strong>{ritual}</strong>. A good moment to join in.</p>",
    ),
    "missed_nudge": Template(
        title="{ritual} can wait for tomorrow",
        body="{ritual} slipped by today, and that's fine. Tomorrow is another chance.",
        sms="Attune: {ritual} slipped by today. Tomorrow is another chance.",
        subject="{ritual} can wait for tomorrow",
        html="<p><strong>{ritual}</strong> slipped by today, and that's fine. Tomorrow is another chance.</p>",
    ),
    "milestone": Template(
        title="{length} {unit} of {ritual}",
        body="You have kept {ritual} for {length} {unit} in a row. Worth celebrating together.",
        sms="Attune: {length} {unit} of {ritual} in a row!",
        subject="{length} {unit} of {ritual}",
        html="<p>You have kept <strong>{ritual}</strong> for {length} {unit} in a row.</p>",
    ),
    "ratio_dropped": Template(
        title="A nudge toward warmth",
        body="Lately: {positive} warm moments to {negative} hard ones. Aim for five to one; a thank-you counts.",
        sms="Attune: {positive} warm moments to {negative} hard ones lately. A thank-you counts.",
        subject="A nudge toward warmth",
        html="<p>Over the last {window_days} days: {positive} warm moments to {negative} hard ones.</p>"
             "<p>Aim for five warm moments for each hard one. A thank-you counts.</p>",
    ),
    "achievement": Template(
        title="{name} moved a dream forward",
        body="{name} made progress on \u201c{dream}\u201d. Celebrate it together!",
        sms="Attune: {name} made progress on \u201c{dream}\u201d. Celebrate it!",
        subject="{name} moved a dream forward",
        html="<p>{name} made progress on <strong>{dream}</strong>. Celebrate it together!</p>",
    ),
    "weekly_summary": Template(
        title="Your week together",
        body="{kept} of {expected} rituals kept this week. Focus: {focus_title}.",
        sms="Attune: {kept} of {expected} rituals kept this week. Focus: {focus_title}.",
        subject="Your week together: {week_start} to {week_end}",
        html="<h2>Your week together</h2><p>{week_start} to {week_end}</p>{tally_rows}"
             "<p>Date nights in the last four weeks: {date_nights_kept} of {date_nights_expected}.</p>"
             "<p>Moments: {positive} warm, {negative} hard.</p><h3>{focus_title}</h3><p>{focus_text}</p>",
    ),
    "request": Template(
        title="{title}", body="{body}", sms="{body}", subject="{title}", html="<p>{body}</p>",
    ),
}

LINK_TEXT = "Done? Tap: {link}"
LINK_HTML = '<p><a href="{link}">Mark it done</a></p>'
