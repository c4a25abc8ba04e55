"""The app's own read model (built from the other services' events) and its sessions and invitations."""

from __future__ import annotations

from attune_runtime.deadletters import dead_letter_keys_table
from attune_runtime.sql import UtcDateTime
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, Text, Uuid

metadata = MetaData()

households = Table(
    "households", metadata,
    Column("household_id", Uuid, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("confirmed", Boolean, nullable=False, default=False),  # the scheduler said HouseholdRegistered
    Column("updated_at", UtcDateTime, nullable=False),
)

members = Table(
    "members", metadata,
    Column("member_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("display_name", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("confirmed", Boolean, nullable=False, default=False),  # the scheduler said MemberUpserted
)

sessions = Table(
    "sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("member_id", Uuid, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

invites = Table(
    "invites", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("invited_by", Uuid, nullable=False),
    Column("role", String(16), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Column("member_id", Uuid, nullable=True),  # a sign-in link for a member who already exists (operator's tool)
)

rituals = Table(
    "rituals", metadata,
    Column("ritual_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("template", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("participants", Text, nullable=False),  # JSON list of member ids
    Column("rrule", String(500), nullable=False),
    Column("local_time", String(5), nullable=False),
    Column("sensitive", Boolean, nullable=False),
    Column("state", String(20), nullable=False),  # active, paused, awaiting_consent, or requested (not yet confirmed)
    Column("next_due_at", UtcDateTime, nullable=True),
    Column("command_id", Uuid, nullable=True, index=True),  # the app's ScheduleRitual, to match a rejection
)

consents = Table(
    "consents", metadata,
    Column("ritual_id", Uuid, primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
)

occurrences = Table(
    "occurrences", metadata,
    Column("occurrence_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False),
    Column("ritual_id", Uuid, nullable=False),
    Column("template", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("participants", Text, nullable=False),
    Column("scheduled_for", UtcDateTime, nullable=False),
    Column("deadline", UtcDateTime, nullable=False),
    Column("sensitive", Boolean, nullable=False),
)

checkins = Table(
    "checkins", metadata,
    Column("occurrence_id", Uuid, primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("closeness", Integer, nullable=True),
    Column("recorded_at", UtcDateTime, nullable=False),
)

streaks = Table(
    "streaks", metadata,
    Column("ritual_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("template", String(64), nullable=False),
    Column("length", Integer, nullable=False),
    Column("best", Integer, nullable=False),
    Column("unit", String(16), nullable=False),
)

moments = Table(
    "moments", metadata,
    Column("moment_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("member_id", Uuid, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("happened_at", UtcDateTime, nullable=False),
)

summaries = Table(
    "summaries", metadata,
    Column("household_id", Uuid, primary_key=True),
    Column("week_start", String(10), nullable=False),
    Column("positive", Integer, nullable=False),
    Column("negative", Integer, nullable=False),
    Column("focus_title", String(200), nullable=False),
    Column("focus_text", Text, nullable=False),
)

date_nights = Table(
    "date_nights", metadata,
    Column("ritual_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("kept", Integer, nullable=False),
    Column("expected", Integer, nullable=False),
    Column("window_weeks", Integer, nullable=False),
)

# The dreams board (from check-ins' DreamShared, DreamSupported, AchievementRecorded); `achievements` holds those
# recorded without a dream of the board (RecordAchievement), a reached dream is marked on its row.
dreams = Table(
    "dreams", metadata,
    Column("dream_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("member_id", Uuid, nullable=False),
    Column("dream", String(200), nullable=False),
    Column("shared_at", UtcDateTime, nullable=False),
    Column("reached_at", UtcDateTime, nullable=True),  # its owner reached it (AchievementRecorded with its id)
)

dream_supports = Table(
    "dream_supports", metadata,
    Column("dream_id", Uuid, primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
)

achievements = Table(
    "achievements", metadata,
    Column("achievement_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("member_id", Uuid, nullable=False),
    Column("dream", String(200), nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

# "We just connected" (check-ins' AfterCareConsentChanged, AfterCareStarted): who said yes, each after-care started.
aftercare_consents = Table(
    "aftercare_consents", metadata,
    Column("household_id", Uuid, primary_key=True),
    Column("member_id", Uuid, primary_key=True),
)

aftercare_moments = Table(
    "aftercare_moments", metadata,
    Column("moment_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("partners", Text, nullable=False),  # JSON list of the two member ids
    Column("started_at", UtcDateTime, nullable=False),
)

# The day's question of an occurrence (QuestionAsked: a catalog key) and who has answered it (QuestionAnswered);
# the answers' texts stay in check-ins and are read through its API (attune_app.questions).
questions = Table(
    "questions", metadata,
    Column("occurrence_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("question_key", String(64), nullable=False),
    Column("bank", String(16), nullable=False),
    Column("scheduled_for", UtcDateTime, nullable=False),
)

question_answered = Table(
    "question_answered", metadata,
    Column("occurrence_id", Uuid, primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
)

HOUSEHOLD_TABLES = (households, members, sessions, invites, rituals, consents, occurrences, checkins, streaks,
                    moments, summaries, date_nights, dreams, dream_supports, achievements, aftercare_consents,
                    aftercare_moments, questions, question_answered)

# Dead letters (what the consumer gave up on) are sealed under a key per household kept here; erasure deletes it.
dead_letter_keys = dead_letter_keys_table(metadata, "app")

# Households erased (HouseholdErased): no dead-letter key is ever made again for them, and a late dead letter of
# one keeps none of its bytes. Only the id and when; nothing of the household is left.
erased_households = Table(
    "app_erased_households", metadata,
    Column("household_id", Uuid, primary_key=True),
    Column("erased_at", UtcDateTime, nullable=False),
)
