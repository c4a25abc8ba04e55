"""The built-in ritual templates and the curiosity question bank: data only, shared by every service.

The scheduler validates and fires rituals made from these templates; the notifier renders their
titles and prompts; checkins uses the check-in windows. To add a ritual, add a `Template` here.
Prompts follow the six steps of the seed article (attune, keep dating, experiment, stay connected
after sex, stay curious, invest in each other's dreams) and Gottman's 5:1 ratio, in our own words.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

__all__ = ["CHILD_QUESTIONS", "CURIOSITY_QUESTIONS", "QUESTIONS_DEEPER", "QUESTIONS_DREAMS", "QUESTIONS_LIGHT",
           "QUESTION_DEPTHS", "TEMPLATES", "Audience", "Rhythm", "Template", "parent_asks", "question_by_key",
           "question_depth", "question_key", "template"]


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
        short_prompt="Just the two of you: no chores, no logistics.",
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


# The curiosity question bank (article step 5, "stay curious"): open-ended questions in the Gottman spirit, never
# answerable with yes or no, nothing that shames, short enough for a push body or one SMS with its lead-in.
# Three depths: light (everyday), deeper (feelings, values, history), dreams (what each of you hopes for).
# The notifier remembers a household's picks by their index in CURIOSITY_QUESTIONS: adding or moving questions
# shifts indexes, which costs a household at most an early repeat, never a wrong or missing message.
# Everyday curiosity: most days.
QUESTIONS_LIGHT: tuple[str, ...] = (
    "What part of today would you happily live again?",
    "What's a small thing I do that makes you feel loved?",
    "What's been taking up most of the room in your head lately?",
    "What's a place you'd love us to go together, and why there?",
    "What does a perfect lazy Sunday look like for you these days?",
    "What's one thing you'd like us to do more of?",
    "What would you do with a whole free week, just for yourself?",
    "Who do you admire right now, and what about them?",
    "What song or book has been on your mind, and what does it stir up?",
    "What are you looking forward to this month?",
    "What's a compliment you've received that stuck with you?",
    "What made you laugh hardest recently?",
    "What's something kind a stranger did for you that you still remember?",
    "What small habit of yours are you quietly proud of?",
    "What do you need more of from me this week?",
    "What's a moment this week when you felt close to me?",
    "What was the best moment of your day, even a tiny one?",
    "What's something that made you smile this week?",
    "Which meal would you happily eat every week, and what makes it so good?",
    "What's a film or series you'd love us to watch together next?",
    "What's the nicest thing someone said to you lately?",
    "Where would you go for a day trip if we left tomorrow morning?",
    "What's a smell that takes you straight back to childhood?",
    "What's your favourite way to spend a rainy afternoon?",
    "What's a little luxury that makes an ordinary day feel special?",
    "What are you enjoying most about this season?",
    "What's the best thing you ate this week?",
    "Which of your friends would you like to see more often, and why them?",
    "What's a song that always lifts your mood?",
    "What was the highlight of your weekend?",
    "What's something you're curious about right now?",
    "What's a small adventure we could have this month?",
    "What would your ideal breakfast look like tomorrow?",
    "What's a hobby you'd pick up if you had one free evening a week?",
    "What was your favourite game as a child, and who did you play it with?",
    "What's something you noticed today that others might have missed?",
    "Which room in our home do you like best, and why?",
    "What's the funniest thing that happened to you at work or school?",
    "What's a skill you have that I might not know about?",
    "How would you spend a surprise day off?",
    "What's the best gift you've ever received, and what made it special?",
    "What's a place near here you'd like to explore?",
    "Which holiday of ours would you love to relive?",
    "What's a word or phrase you've been using a lot lately?",
    "What made today easier than you expected?",
    "What's something you're looking forward to this weekend?",
    "What's a talent you wish you had, just for fun?",
    "Which season suits you best, and what do you love about it?",
    "What's a dish you'd like us to cook together?",
    "What's something that made you feel calm today?",
    "What's a book, podcast or article you'd recommend to me right now?",
    "Who made your day a little better today, and how?",
    "What's your favourite memory from a birthday?",
    "What's the most beautiful thing you saw this week?",
    "How would you describe your week in three words?",
    "What's a small change that would make our mornings nicer?",
    "What's something you bought recently that you really love?",
    "What would you name a boat, a band or a pet right now?",
    "Which app, tool or gadget makes your life easier, and how?",
    "What's a food you disliked as a child and love now?",
    "What's your favourite way to spend time outdoors?",
    "What's a tradition you'd like us to start together?",
    "What did you learn today, big or small?",
    "Which moment of today would you want to photograph?",
    "What's a smell, sound or taste you love about home?",
    "What's something silly that always makes you laugh?",
    "What's your idea of a perfect evening in?",
    "Which city would you like to spend a long weekend in?",
    "What's one thing on your to-do list you'd love me to take off your hands?",
    "What's a childhood TV show you still think about?",
    "What's been the nicest surprise of this month?",
    "What's a simple pleasure you never get tired of?",
    "What would you like to celebrate this week, however small?",
    "How do you like to start your day when you have no plans?",
    "What's something you're grateful for today?",
    "Which teacher do you remember most, and why?",
    "What's a question you've been wondering about lately?",
    "What kind of music would you put on for a drive with me?",
    "What's a compliment you'd like to give someone but haven't yet?",
    "What's a small win from today you'd like to tell me about?",
)

# Feelings, values and history: a couple of days a week.
QUESTIONS_DEEPER: tuple[str, ...] = (
    "What's something you've changed your mind about in the last year?",
    "When did you last feel really proud of yourself?",
    "What do you wish more people understood about you?",
    "Which friendship has shaped you the most?",
    "What's a worry you haven't said out loud yet?",
    "What memory of us do you come back to most often?",
    "What has surprised you about yourself this year?",
    "How do you like to be comforted when you've had a bad day?",
    "What tradition from your family do you want to keep, and which would you drop?",
    "When do you feel most like yourself?",
    "What's a risk you're glad you took?",
    "What's something about your work you've never really explained to me?",
    "What does home mean to you now, compared with when we met?",
    "What's a fear you've outgrown?",
    "What question do you wish I'd ask you more often?",
    "What's something you're still learning to forgive yourself for?",
    "When do you feel most loved by me?",
    "What's a moment from your childhood that still shapes how you see the world?",
    "What helps you feel safe enough to tell me something hard?",
    "What's one way you've grown since we met?",
    "What does a good apology look like to you?",
    "What did your parents teach you about love, with or without words?",
    "What's been weighing on you that you'd like to share?",
    "How has your idea of a good life changed over the years?",
    "What's a value you'd never want to give up?",
    "When did you last feel truly understood, and by whom?",
    "What's something you find hard to ask for?",
    "What part of yourself do you keep hidden most of the time?",
    "What moment of our relationship are you most grateful for?",
    "How do you know when you need time alone?",
    "What's a mistake that taught you something important?",
    "What does feeling respected look like for you?",
    "Who has been there for you when it really mattered?",
    "What's something you wish you'd known at twenty?",
    "What's a hard moment between us that brought us closer in the end?",
    "How do you show love when words don't come easily?",
    "What are you most proud of in how we handle hard times?",
    "What's a belief you grew up with that you've let go of?",
    "What makes you feel at peace?",
    "What's one thing you'd like me to understand about your family?",
    "When did you feel most alive this year?",
    "What's something you've been carrying alone that I could help with?",
    "How has becoming an adult surprised you?",
    "What does trust feel like to you?",
    "What kind of friend do you try to be?",
    "What's a moment you felt brave, even if nobody noticed?",
    "What would you like to hear from me more often?",
)

# Dreams and hopes (article step 6): about once a week.
QUESTIONS_DREAMS: tuple[str, ...] = (
    "What did you dream of becoming as a child, and what's left of that dream?",
    "What's something you'd like to learn if time and money didn't matter?",
    "If we could master one new thing together, what would you pick?",
    "What's one dream you've put on hold, and what would it take to pick it back up?",
    "What would you like our life to look like five years from now?",
    "What's a dream you've never told anyone about?",
    "What would you attempt if you knew you couldn't fail?",
    "Where would you like to live one day, and what draws you there?",
    "What would a perfect day look like ten years from now?",
    "What's one thing you'd like to create in your lifetime?",
    "What adventure would you like us to have before we're old?",
    "How could I support a dream of yours this month?",
    "What would you do with a year off, with everything taken care of?",
    "What's a goal you'd like to reach by next year?",
    "What would you like people to say about you when you're eighty?",
    "What kind of work would make you excited on a Monday morning?",
    "What's a country you dream of seeing, and what would you do first there?",
    "What would you like our home to feel like in five years?",
    "What's a small step you could take this week towards something you want?",
    "Which dream of ours could we start planning together?",
    "What's a dream of mine you'd like to know more about?",
    "What do you hope our life together will be known for?",
    "If money weren't a worry, how would you spend your days?",
    "What would make next year the best one yet for you?",
    "What's something you'd love to learn together with me?",
    "What legacy would you like to leave for the people you love?",
)

QUESTION_DEPTHS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {"light": QUESTIONS_LIGHT, "deeper": QUESTIONS_DEEPER, "dreams": QUESTIONS_DREAMS})

# The whole adult bank; a question's index here is what the notifier stores per household.
CURIOSITY_QUESTIONS: tuple[str, ...] = QUESTIONS_LIGHT + QUESTIONS_DEEPER + QUESTIONS_DREAMS


def question_depth(question: str) -> str:
    """"light", "deeper" or "dreams": the depth of a question of the adult bank (KeyError for any other)."""
    return _DEPTH_OF[question]


_DEPTH_OF: dict[str, str] = {q: depth for depth, qs in QUESTION_DEPTHS.items() for q in qs}

# What a parent and child ask each other at parent_child_attunement: simple, warm, about the child's
# own day and world (the child reads it; the parent asks it). Light only.
CHILD_QUESTIONS: tuple[str, ...] = (
    "What was the best part of your day?",
    "What made you laugh today?",
    "Who did you play with today, and what did you play?",
    "What was something hard today, and how did you manage it?",
    "What would you like to do together this weekend?",
    "If you could have any superpower, which one would you pick, and why?",
    "What's your favourite animal right now, and what do you like about it?",
    "What made you feel proud today?",
    "What's something kind you did for someone today?",
    "What's something kind someone did for you today?",
    "What was the yummiest thing you ate today?",
    "What did you learn today that surprised you?",
    "If you could go anywhere tomorrow, where would you go?",
    "What's a game you'd like to play with me?",
    "What made you feel a bit sad or cross today?",
    "What's your favourite story, and which part do you like best?",
    "What would you invent if you were an inventor?",
    "What was the funniest thing you saw today?",
    "What's something you're looking forward to?",
    "What's something you'd like to get better at?",
    "Who is someone you'd like to be friends with, and why?",
    "What would your dream day look like, from breakfast to bedtime?",
    "What song would you like us to sing or dance to?",
    "What's the best thing about being your age?",
    "What do you want to be when you grow up, and what do you like about it?",
    "What would you cook if you were the chef tonight?",
    "What helps you feel better when you're upset?",
    "What was the most interesting thing at school or nursery today?",
    "What would you name a new pet, and what kind of pet would it be?",
    "What's your favourite thing we do together?",
    "What made you feel brave today?",
    "If you were the grown-up for a day, what would we do?",
    "What colour would you paint your room, and why?",
    "What's a question you'd like to ask me?",
)


def question_key(question: str) -> str:
    """The stable key of a question of either bank: what travels in a QuestionAsked instead of its text. A hash
    of the English text, so adding or moving questions never changes another question's key."""
    return "q" + hashlib.sha256(question.encode()).hexdigest()[:16]


def question_by_key(key: str) -> tuple[str, str] | None:
    """(bank, English text) of a question key ("adult" or "child"), or None for a key the catalog does not
    know (a question since reworded): the reader then shows no question rather than a wrong one."""
    return _BY_KEY.get(key)


def parent_asks(question: str) -> str:
    """How a parent reads a question of CHILD_QUESTIONS (each is a msgid of its own, translated whole)."""
    return f"Ask your child: {question}"


_BY_KEY: dict[str, tuple[str, str]] = {
    **{question_key(q): ("adult", q) for q in CURIOSITY_QUESTIONS},
    **{question_key(q): ("child", q) for q in CHILD_QUESTIONS},
}
