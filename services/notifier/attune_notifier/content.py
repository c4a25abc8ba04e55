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


# What a child reads instead of the adults' words (warm, simple, nothing intimate): the ritual's title and
# prompt as a child would hear them. A ritual without its own entry gets CHILD_DEFAULT.
CHILD_WORDS: dict[str, tuple[str, str]] = {
    "parent_child_attunement": ("Time together", "A few cosy minutes with your grown-up: tell them about your day!"),
}
CHILD_DEFAULT = ("Time together", "A little time together with your family.")


def may_include_children(template: str) -> bool:
    """Whether a ritual may have a child among its participants (the scheduler refuses one in any other)."""
    known = catalog.template(template)
    return known is None or catalog.Audience.FAMILY in known.audience


def child_words(template: str) -> dict[str, str]:
    """The `ritual` and `prompt` a child gets for a ritual (never the adults' title, even a renamed one)."""
    title, prompt = CHILD_WORDS.get(template, CHILD_DEFAULT)
    return {"ritual": title, "prompt": prompt}


# A missed ritual's "next chance", by its cadence: when the next one comes, and how long this one had.
_NEXT_CHANCE = {
    "daily": {"next_time": "tomorrow", "span": " today", "next_chance": "Tomorrow is another chance."},
    "weekly": {"next_time": "next week", "span": " this week", "next_chance": "Next week is another chance."},
    None: {"next_time": "next time", "span": "", "next_chance": "There's always a next time."},
}


def cadence(template: str) -> str | None:
    """"daily" or "weekly" from the ritual's default rhythm in the catalog; None when it is neither plainly
    (weekdays only, every other week, on demand, unknown template): the words then say "next time"."""
    known = catalog.template(template)
    if known is None or known.rhythm is None:
        return None
    parts = dict(p.split("=", 1) for p in known.rhythm.rrule.upper().split(";") if "=" in p)
    if parts.get("INTERVAL", "1") != "1":
        return None
    days = [d for d in parts.get("BYDAY", "").split(",") if d]
    if parts.get("FREQ") == "DAILY" and not days or parts.get("FREQ") == "WEEKLY" and len(days) == 7:
        return "daily"
    if parts.get("FREQ") == "WEEKLY" and len(days) == 1:
        return "weekly"
    return None


def next_chance(template: str) -> dict[str, str]:
    return dict(_NEXT_CHANCE[cadence(template)])


# The article's steps that belong to a sensitive ritual (3 experiment, 4 stay close afterwards): a weekly
# summary's focus on one of them is worded like that ritual's own reminders (see `focus_words`).
_SENSITIVE_STEPS: dict[int, str] = {
    int(t.step[:1]): t.key for t in catalog.TEMPLATES.values() if t.sensitive and t.step[:1].isdigit()
}
SENSITIVE_FOCUS_TEXT = "One of your rituals could use a little care this week. Open Attune to see which."


def summary_title(template: str) -> str:
    """A ritual's title as a summary lists it: a sensitive ritual by its discreet title, as its reminders are."""
    words = ritual_content(template)
    if words.sensitive:
        return words.discreet_title or NEUTRAL_TITLE
    return words.title


def focus_words(step: int, title: str, text: str) -> tuple[str, str]:
    """A summary's focus as every channel may show it: a sensitive ritual's step by its discreet words."""
    if step in _SENSITIVE_STEPS:
        return summary_title(_SENSITIVE_STEPS[step]), SENSITIVE_FOCUS_TEXT
    return title, text


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
    "missed_nudge": Template(  # next_time, span, next_chance: by the ritual's cadence (`next_chance`)
        title="{ritual} can wait for {next_time}",
        body="{ritual} slipped by{span}, and that's fine. {next_chance}",
        sms="Attune: {ritual} slipped by{span}. {next_chance}",
        subject="{ritual} can wait for {next_time}",
        html="<p><strong>{ritual}</strong> slipped by{span}, and that's fine. {next_chance}</p>",
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
