"""The check-ins store's tables (SQLAlchemy Core). Instants are stored in UTC; notes are Fernet tokens."""

from __future__ import annotations

from attune_runtime.deadletters import dead_letter_keys_table
from attune_runtime.sql import UtcDateTime
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

metadata = MetaData()

households = Table(
    "households", metadata,
    Column("household_id", Uuid, primary_key=True),
    Column("time_zone", String(64), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

members = Table(
    "members", metadata,
    Column("household_id", Uuid, primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Index("ix_members_member_id", "member_id"),  # which household a member is in (service.check_members)
)

rituals = Table(
    "rituals", metadata,
    Column("ritual_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("template", String(64), nullable=False),
    Column("rrule", String(500), nullable=True),
    Column("deleted", Boolean, nullable=False, default=False),
)

occurrences = Table(
    "occurrences", metadata,
    Column("occurrence_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False),
    Column("ritual_id", Uuid, nullable=False),
    Column("template", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("participants", JSON, nullable=False),
    Column("scheduled_for", UtcDateTime, nullable=False),
    Column("deadline", UtcDateTime, nullable=False),
    Column("local_date", Date, nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("sensitive", Boolean, nullable=False),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("missed", Boolean, nullable=False, default=False),
    Index("ix_occurrences_household_date", "household_id", "local_date"),
    Index("ix_occurrences_ritual_date", "ritual_id", "local_date"),
    Index("ix_occurrences_open_deadline", "closed_at", "deadline"),
)

checkins = Table(
    "checkins", metadata,
    Column("checkin_id", Uuid, primary_key=True),
    Column("occurrence_id", Uuid, nullable=False),
    Column("member_id", Uuid, nullable=False),
    Column("household_id", Uuid, nullable=False),
    Column("ritual_id", Uuid, nullable=False),
    Column("template", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("snoozed_until", UtcDateTime, nullable=True),
    Column("closeness", Integer, nullable=True),
    Column("note_enc", LargeBinary, nullable=True),
    Column("source", String(16), nullable=False),
    Column("submitted_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("scheduled_for", UtcDateTime, nullable=False),
    UniqueConstraint("occurrence_id", "member_id", name="uq_checkins_occurrence_member"),
    Index("ix_checkins_household_scheduled", "household_id", "scheduled_for"),
    Index("ix_checkins_ritual", "ritual_id"),
)

moments = Table(
    "moments", metadata,
    Column("moment_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False),
    Column("member_id", Uuid, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("note_enc", LargeBinary, nullable=True),
    Column("happened_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Index("ix_moments_household_happened", "household_id", "happened_at"),
)

achievements = Table(
    "achievements", metadata,
    Column("achievement_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("member_id", Uuid, nullable=False),
    Column("dream_enc", LargeBinary, nullable=False),
    Column("note_enc", LargeBinary, nullable=True),
    Column("recorded_at", UtcDateTime, nullable=False),
)

streaks = Table(
    "streaks", metadata,
    Column("ritual_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("template", String(64), nullable=False),
    Column("unit", String(8), nullable=False),
    Column("length", Integer, nullable=False),
    Column("best", Integer, nullable=False),
    Column("adherence_kept", Integer, nullable=True),
    Column("adherence_expected", Integer, nullable=True),
)

milestones = Table(
    "milestones", metadata,
    Column("ritual_id", Uuid, primary_key=True),
    Column("run_start", Date, primary_key=True),
    Column("length", Integer, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("reached_at", UtcDateTime, nullable=False),
)

ratio_state = Table(
    "ratio_state", metadata,
    Column("household_id", Uuid, primary_key=True),
    Column("below", Boolean, nullable=False),
)

weekly_summaries = Table(
    "weekly_summaries", metadata,
    Column("household_id", Uuid, primary_key=True),
    Column("week_start", Date, primary_key=True),
    Column("sent_at", UtcDateTime, nullable=False),
)

processed_events = Table(
    "processed_events", metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=True, index=True),
    Column("processed_at", UtcDateTime, nullable=False),
)

used_link_tokens = Table(
    "used_link_tokens", metadata,
    Column("token_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("checkin_id", Uuid, nullable=True),
    Column("used_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

# Ids only, no personal data: lets a redelivered pre-erasure event be ignored instead of re-creating data.
erased_households = Table(
    "erased_households", metadata,
    Column("household_id", Uuid, primary_key=True),
    Column("erased_at", UtcDateTime, nullable=False),
)

# The scheduler's HouseholdCredentialsRevoked: credentials of the household issued before not_before are refused.
# Kept through an erasure (no personal data), so an erased household's old credentials stay refused.
credential_revocations = Table(
    "checkins_credential_revocations", metadata,
    Column("household_id", Uuid, primary_key=True),
    Column("not_before", UtcDateTime, nullable=False),
)

# Events decided by a transaction, written in it, published by the relay after it commits (then deleted):
# only what is still to go. `id` gives the order: per household it is the commit order (see SqlTx.enqueue).
# AUTOINCREMENT on SQLite so a deleted id is never reused while the relay still holds it in memory.
outbox = Table(
    "checkins_outbox", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("topic", String(100), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("body", Text, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    sqlite_autoincrement=True,
)

# Occurrences announced by a RitualReminder whose RitualDue has not come yet: only a reminder's one-tap link
# reads them (to say what is coming and when its link will work). Streaks, summaries and the missed timer
# never see them: a ritual paused or skipped after its reminder leaves nothing behind but this row, which
# its RitualDue replaces or the timer prunes once it is long past.
announced_occurrences = Table(
    "announced_occurrences", metadata,
    Column("occurrence_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("ritual_id", Uuid, nullable=False),
    Column("template", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("participants", JSON, nullable=False),
    Column("scheduled_for", UtcDateTime, nullable=False, index=True),
    Column("time_zone", String(64), nullable=False),
    Column("sensitive", Boolean, nullable=False),
)

# SMS short links (attune_runtime.shortlinks): a code's hash and its one-tap token sealed with the code.
short_links = Table(
    "short_links", metadata,
    Column("code_id", String(64), primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("sealed_token", Text, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

# The dreams board (step 6): a member's dream (sealed like notes), when its owner reached it, and who supports it.
dreams = Table(
    "dreams", metadata,
    Column("dream_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("member_id", Uuid, nullable=False),
    Column("dream_enc", LargeBinary, nullable=False),
    Column("note_enc", LargeBinary, nullable=True),
    Column("shared_at", UtcDateTime, nullable=False),
    Column("reached_at", UtcDateTime, nullable=True),
)

dream_supports = Table(
    "dream_supports", metadata,
    Column("dream_id", Uuid, primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("supported_at", UtcDateTime, nullable=False),
)

# "We just connected" (step 4, on demand): who said yes to the private button, and each after-care started.
aftercare_consents = Table(
    "aftercare_consents", metadata,
    Column("household_id", Uuid, primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("given_at", UtcDateTime, nullable=False),
)

aftercare_moments = Table(
    "aftercare_moments", metadata,
    Column("moment_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("started_by", Uuid, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
)

# The day's question of an occurrence (QuestionAsked: a catalog key) and each member's answer, a Fernet token
# like a note: one per member per occurrence (attune_checkins.questions).
questions_asked = Table(
    "questions_asked", metadata,
    Column("occurrence_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("ritual_id", Uuid, nullable=False),
    Column("template", String(64), nullable=False),
    Column("bank", String(16), nullable=False),
    Column("question_key", String(64), nullable=False),
    Column("depth", String(16), nullable=True),
    Column("scheduled_for", UtcDateTime, nullable=False),
)

question_answers = Table(
    "question_answers", metadata,
    Column("occurrence_id", Uuid, primary_key=True),
    Column("member_id", Uuid, primary_key=True),
    Column("household_id", Uuid, nullable=False, index=True),
    Column("answer", LargeBinary, nullable=False),
    Column("answered_at", UtcDateTime, nullable=False),
)

HOUSEHOLD_TABLES = (
    households, members, rituals, occurrences, checkins, moments, achievements, streaks, milestones,
    ratio_state, weekly_summaries, processed_events, used_link_tokens, outbox, announced_occurrences,
    short_links, dreams, dream_supports, aftercare_consents, aftercare_moments, questions_asked, question_answers,
)

# Seals this service's dead letters, one key per household: erasing a household deletes its row.
dead_letter_keys = dead_letter_keys_table(metadata, "checkins")
