"""The built-in ritual templates and the curiosity question bank: data only, shared by every service.

The scheduler validates and fires rituals made from these templates; the notifier renders their
titles and prompts; checkins uses the check-in windows. To add a ritual, add a `Template` here.
Prompts follow the six steps of the seed article (attune, keep dating, experiment, stay connected
after sex, stay curious, invest in each other's dreams) and Gottman's 5:1 ratio, in our own words.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

__all__ = ["CURIOSITY_QUESTIONS", "TEMPLATES", "Audience", "Rhythm", "Template", "template"]


class Audience(StrEnum):
    COUPLE = "couple"
    FAMILY = "family"


@dataclass(frozen=True)
class Rhythm:
    """A default schedule: an RFC 5545 RRULE (no DTSTART) and a local HH:MM in the household's zone."""

    rrule: str
    local_time: str


@dataclass(frozen=True)
class Template:
    key: str
    step: str
    title: str
    short_prompt: str
    long_prompt: str
    rhythm: Rhythm | None
    """None: on demand only, never scheduled."""
    sensitive: bool = False
    """Sensitive rituals need every participant's opt-in and are worded discreetly on lock screens."""
    discreet_title: str | None = None
    """What a lock screen shows for a sensitive ritual instead of `title`."""
    reminder_offsets_minutes: tuple[int, ...] = ()
    catch_up_minutes: int = 60
    """After downtime, an occurrence later than this is skipped (with a reason), not fired late."""
    checkin_window_minutes: int = 12 * 60
    """How long after the occurrence a check-in still counts (RitualDue.deadline)."""
    audience: tuple[Audience, ...] = (Audience.COUPLE,)

    @property
    def schedulable(self) -> bool:
        return self.rhythm is not None


_TEMPLATES = (
    Template(
        key="evening_attunement",
        step="1 attune to your partner's feelings",
        title="Evening attunement",
        short_prompt="Ten minutes for each other: how was your day, really?",
        long_prompt=(
            "Put the phones face down and turn toward each other. Ask how the day really went, then just "
            "listen: no fixing, no interrupting, no verdicts. Nod, keep eye contact, try to see it from where "
            "they stand. If it was hard, say so (\"That sounds exhausting, no wonder you're upset\"), and if "
            "they want to keep going, ask something open: \"How did that feel?\" or \"What do you want to do "
            "next?\" Then swap."
        ),
        rhythm=Rhythm("FREQ=DAILY", "20:30"),
        catch_up_minutes=90,
        checkin_window_minutes=14 * 60,
    ),
    Template(
        key="date_night",
        step="2 keep dating",
        title="Date night",
        short_prompt="It's date night: just the two of you, no chores and no logistics.",
        long_prompt=(
            "Keep dating, however long you've been together. Tonight is for the two of you: go out or stay "
            "in, but make it feel chosen, not leftover. Try somewhere or something you haven't done before, "
            "leave the to-do list at the door, and spend at least part of the evening getting to know the "
            "person across the table all over again. Couples who keep a weekly date night are far more "
            "likely to call themselves very happy."
        ),
        rhythm=Rhythm("FREQ=WEEKLY;BYDAY=FR", "19:00"),
        reminder_offsets_minutes=(24 * 60, 4 * 60),
        catch_up_minutes=120,
        checkin_window_minutes=2 * 24 * 60,
    ),
    Template(
        key="six_second_kiss_morning",
        step="2 keep dating: the six-second kiss",
        title="Six-second kiss goodbye",
        short_prompt="Before you head off: one kiss, six slow seconds.",
        long_prompt=(
            "A peck on the way out the door is a habit; six seconds is a moment. Stop, hold each other, and "
            "kiss for at least six seconds before you part. It's a tiny ritual of connection that carries "
            "into the rest of the day."
        ),
        rhythm=Rhythm("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "07:30"),
        catch_up_minutes=30,
        checkin_window_minutes=12 * 60,
    ),
    Template(
        key="six_second_kiss_evening",
        step="2 keep dating: the six-second kiss",
        title="Six-second kiss hello",
        short_prompt="Welcome each other home: six seconds, no rushing.",
        long_prompt=(
            "When you see each other again, put the bags down first. Six unhurried seconds of kissing says "
            "\"I'm glad you're back\" better than any text. Let the day wait a moment."
        ),
        rhythm=Rhythm("FREQ=DAILY", "18:30"),
        catch_up_minutes=60,
        checkin_window_minutes=6 * 60,
    ),
    Template(
        key="experiment_together",
        step="3 experiment",
        title="Try something new together",
        short_prompt="A little something for the two of you this week.",
        long_prompt=(
            "Keep things from settling into routine: suggest one new thing to try together this week, "
            "in the bedroom or out of it, a different pace, a different place, a different idea. Talk about "
            "it first, go only as far as you both want, and remember that \"I like what we do\" is a perfectly "
            "good answer too. Nobody should feel judged for their tastes."
        ),
        rhythm=Rhythm("FREQ=WEEKLY;BYDAY=SA", "21:00"),
        sensitive=True,
        discreet_title="A little something for the two of you",
        catch_up_minutes=60,
        checkin_window_minutes=3 * 24 * 60,
    ),
    Template(
        key="after_intimacy",
        step="4 stay connected after sex",
        title="Stay close afterwards",
        short_prompt="Stay a while: hold each other, talk, be close.",
        long_prompt=(
            "Intimacy doesn't end when sex does. Don't hurry out of bed: cuddle, touch gently, say something "
            "loving, talk about whatever comes. It deepens the bond and makes the next time better too."
        ),
        rhythm=None,
        sensitive=True,
        discreet_title="A moment for the two of you",
        catch_up_minutes=0,
        checkin_window_minutes=24 * 60,
    ),
    Template(
        key="curiosity_question",
        step="5 stay curious",
        title="Today's question",
        short_prompt="One question for each other today; listen for what's under the answer.",
        long_prompt=(
            "People keep changing, so stay curious about who your partner is becoming. Ask today's question "
            "and really listen: not to your own thoughts (level 1) but to them, words and face and tone "
            "(level 2), and, if you can, to the feelings, values and hopes behind what they say (level 3). "
            "Ask a follow-up before you share your own answer."
        ),
        rhythm=Rhythm("FREQ=DAILY", "19:30"),
        catch_up_minutes=120,
        checkin_window_minutes=24 * 60,
    ),
    Template(
        key="dreams_checkin",
        step="6 invest in each other's dreams",
        title="Invest in each other's dreams",
        short_prompt="What is one dream of theirs you can back this week?",
        long_prompt=(
            "Ask about one thing your partner is working toward, big or small, and what would help this "
            "week: encouragement, a quiet evening to work on it, you taking over dinner so they can make that "
            "call. If they've achieved something lately, celebrate it properly: a meal you cook, flowers, "
            "friends round. Supporting their dream doesn't mean shelving yours; talk about both."
        ),
        rhythm=Rhythm("FREQ=WEEKLY;BYDAY=SU", "17:00"),
        catch_up_minutes=180,
        checkin_window_minutes=3 * 24 * 60,
    ),
    Template(
        key="positive_moments",
        step="Gottman ratio: five good moments for every hard one",
        title="This week's good moments",
        short_prompt="Note the good moments this week: aim for five for every hard one.",
        long_prompt=(
            "Lasting couples have many more positive moments than negative ones, about five to one. Look "
            "back over the week together: the kind word, the shared laugh, the kiss that lasted, the time one "
            "of you turned toward the other. Log them, and the hard moments too, honestly. Then pick one small "
            "thing to add more of next week."
        ),
        rhythm=Rhythm("FREQ=WEEKLY;BYDAY=SU", "19:00"),
        catch_up_minutes=180,
        checkin_window_minutes=3 * 24 * 60,
    ),
    Template(
        key="parent_child_attunement",
        step="1 attune: parent and child",
        title="Tune in to your child",
        short_prompt="A few minutes with your child, phone away: what was today like for them?",
        long_prompt=(
            "Sit at their level, put your phone out of sight, and ask about their day. Listen without "
            "correcting or rushing to solve it. Name what you see (\"You look really upset about that\") and "
            "let the feeling be OK (\"It's OK to feel that way\"). A hug or a hand on the shoulder says the "
            "rest. Calm, consistent moments like this help children learn to handle big feelings."
        ),
        rhythm=Rhythm("FREQ=DAILY", "19:00"),
        catch_up_minutes=90,
        checkin_window_minutes=12 * 60,
        audience=(Audience.FAMILY,),
    ),
)

TEMPLATES: MappingProxyType[str, Template] = MappingProxyType({t.key: t for t in _TEMPLATES})


def template(key: str) -> Template | None:
    return TEMPLATES.get(key)


CURIOSITY_QUESTIONS: tuple[str, ...] = (
    "What's something you've changed your mind about in the last year?",
    "What part of today would you happily live again?",
    "What's a small thing I do that makes you feel loved?",
    "What did you dream of becoming as a child, and what's left of that dream?",
    "What's been taking up most of the room in your head lately?",
    "When did you last feel really proud of yourself?",
    "What's a place you'd love us to go together, and why there?",
    "What do you wish more people understood about you?",
    "What's something you'd like to learn if time and money didn't matter?",
    "Which friendship has shaped you the most?",
    "What does a perfect lazy Sunday look like for you these days?",
    "What's a worry you haven't said out loud yet?",
    "What's one thing you'd like us to do more of?",
    "What memory of us do you come back to most often?",
    "What would you do with a whole free week, just for yourself?",
    "Who do you admire right now, and what about them?",
    "What has surprised you about yourself this year?",
    "What song or book has been on your mind, and what does it stir up?",
    "How do you like to be comforted when you've had a bad day?",
    "What tradition from your family do you want to keep, and which would you drop?",
    "What are you looking forward to this month?",
    "When do you feel most like yourself?",
    "What's a risk you're glad you took?",
    "What's something about your work you've never really explained to me?",
    "If we could master one new thing together, what would you pick?",
    "What does home mean to you now, compared with when we met?",
    "What's a compliment you've received that stuck with you?",
    "What's one dream you've put on hold, and what would it take to pick it back up?",
    "What made you laugh hardest recently?",
    "What's a fear you've outgrown?",
    "What would you like our life to look like five years from now?",
    "What's something kind a stranger did for you that you still remember?",
    "What small habit of yours are you quietly proud of?",
    "What do you need more of from me this week?",
    "What question do you wish I'd ask you more often?",
    "What's a moment this week when you felt close to me?",
)
