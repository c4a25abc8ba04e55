"""The words: ritual titles and prompts, the curiosity question bank, and message templates, all as data.

Ritual titles, prompts, sensitivity and discreet titles come from `attune_contracts.catalog` (shared
with the scheduler and check-ins); this module adds only what the notifier alone decides (how long a
"due" message stays worth sending). Templates are `str.format` patterns over named parameters; the
HTML ones are filled with escaped values.
"""

from __future__ import annotations

from dataclasses import dataclass

from attune_contracts import catalog

NEUTRAL_TITLE = "A moment for the two of you"
NEUTRAL_BODY = "Open Attune when you have a minute."
GENERIC_PROMPT = "A small moment for the two of you."

# After its scheduled time, how long a "due" message is still worth sending (default: until the deadline).
# A morning kiss reminder at noon is worse than none.
RELEVANT_MINUTES: dict[str, int] = {
    "six_second_kiss_morning": 120,
    "six_second_kiss_evening": 120,
    "date_night": 180,
    "evening_attunement": 180,
    "parent_child_attunement": 180,
}


@dataclass(frozen=True)
class RitualContent:
    title: str
    prompt: str
    sensitive: bool = False
    relevant_minutes: int | None = None
    discreet_title: str | None = None


def ritual_content(template: str, *, title: str | None = None, sensitive: bool | None = None) -> RitualContent:
    """The words for a ritual; the event's own title (a household may rename a ritual) and sensitivity win."""
    known = catalog.template(template)
    base = (RitualContent(known.title, known.short_prompt, known.sensitive, RELEVANT_MINUTES.get(template),
                          known.discreet_title)
            if known is not None else RitualContent(title or "Your ritual", GENERIC_PROMPT,
                                                    relevant_minutes=RELEVANT_MINUTES.get(template)))
    return RitualContent(title or base.title, base.prompt, bool(sensitive) or base.sensitive,
                         base.relevant_minutes, base.discreet_title)


def question_bank() -> tuple[str, ...]:
    return tuple(catalog.CURIOSITY_QUESTIONS)


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
