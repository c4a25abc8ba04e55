"""The notifier's view of the words: everything a member reads comes from `attune_contracts.content` (one
catalog, every language); this module adds only what the notifier alone decides (how long a "due" message
stays worth sending) and the lookups `service.plan` uses. Params hold the catalog's English msgids; a
render translates them into the member's language (`service.render`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from attune_contracts import catalog
from attune_contracts import content as words
from attune_contracts.content import (  # noqa: F401 - the names the rest of the notifier uses
    CHILD_DEFAULT,
    CHILD_WORDS,
    GENERIC_PROMPT,
    NEUTRAL_BODY,
    NEUTRAL_TITLE,
    SENSITIVE_FOCUS_TEXT,
)
from attune_contracts.content import SITUATIONS as TEMPLATES
from attune_contracts.content import Situation as Template

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
    known = words.ritual_words(template)
    return RitualContent(title or known.title, known.prompt, bool(sensitive) or known.sensitive,
                         RELEVANT_MINUTES.get(template), known.discreet_title)


def may_include_children(template: str) -> bool:
    """Whether a ritual may have a child among its participants (the scheduler refuses one in any other)."""
    known = catalog.template(template)
    return known is None or catalog.Audience.FAMILY in known.audience


def child_words(template: str) -> dict[str, str]:
    """The `ritual` and `prompt` a child gets for a ritual (never the adults' title, even a renamed one)."""
    mine = words.ritual_words(template, "child")
    return {"ritual": mine.title, "prompt": mine.prompt}


def cadence(template: str) -> str | None:
    """"daily" or "weekly" from the ritual's default rhythm in the catalog (RitualMissed.cadence wins)."""
    return words.default_cadence(template)


def next_chance(template: str, ritual_cadence: str | None = None) -> dict[str, str]:
    """A missed ritual's next-chance words: by its own cadence (RitualMissed.cadence: daily, weekly, other)
    when the event says, else by its template's default rhythm."""
    known = ritual_cadence if ritual_cadence is not None else cadence(template)
    return dict(words.NEXT_CHANCE[known if known in ("daily", "weekly") else None])


# The article's steps that belong to a sensitive ritual (3 experiment, 4 stay close afterwards): a weekly
# summary's focus on one of them is worded like that ritual's own reminders (see `focus_words`).
_SENSITIVE_STEPS: dict[int, str] = {
    int(t.step[:1]): t.key for t in catalog.TEMPLATES.values() if t.sensitive and t.step[:1].isdigit()
}


def summary_title(template: str) -> str:
    """A ritual's title as a summary lists it: a sensitive ritual by its discreet title, as its reminders are."""
    known = ritual_content(template)
    if known.sensitive:
        return known.discreet_title or NEUTRAL_TITLE
    return known.title


def focus_words(step: int, title: str, text: str) -> tuple[str, str]:
    """A summary's focus as every channel may show it: a sensitive ritual's step by its discreet words."""
    if step in _SENSITIVE_STEPS:
        return summary_title(_SENSITIVE_STEPS[step]), SENSITIVE_FOCUS_TEXT
    return title, text


def question_bank() -> tuple[str, ...]:
    return tuple(catalog.CURIOSITY_QUESTIONS)


@functools.cache
def question_depths() -> tuple[str, ...]:
    """The depth (light, deeper, dreams) of each question of `question_bank()`, index for index."""
    return tuple(catalog.question_depth(q) for q in catalog.CURIOSITY_QUESTIONS)


def child_question_bank() -> tuple[str, ...]:
    """What a parent and child ask each other at parent_child_attunement (the child reads it, the parent asks it)."""
    return tuple(catalog.CHILD_QUESTIONS)


__all__ = ["TEMPLATES", "Template"]
