"""`attune`: the front door. Talks to the system as any other service would: commands on Kafka, the services'
HTTP APIs. Configuration: ATTUNE_KAFKA, ATTUNE_CHECKINS_URL, ATTUNE_NOTIFIER_URL, ... or attune.toml."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import date
from enum import StrEnum
from typing import Any

import typer
from attune_contracts import Topic
from attune_contracts.catalog import TEMPLATES, template
from attune_contracts.content import known_locale
from attune_contracts.messages import (
    CheckInSource,
    CheckInStatus,
    DeleteRitual,
    EraseHousehold,
    GiveConsent,
    HouseholdKind,
    MemberRole,
    PauseRitual,
    RegisterHousehold,
    ResumeRitual,
    RevokeHouseholdCredentials,
    ScheduleRitual,
    SubmitCheckIn,
    UpsertMember,
    WithdrawConsent,
)
from rich.console import Console
from rich.table import Table

from . import bus, services
from .config import (
    CliConfig,
    current_household,
    known_members,
    remember_household,
    remember_member,
    resolve_member,
)

app = typer.Typer(help="Attune: rituals that build intimacy, kept on time.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
household_app = typer.Typer(help="Households.", no_args_is_help=True)
member_app = typer.Typer(help="Members and their channels.", no_args_is_help=True)
ritual_app = typer.Typer(help="Rituals.", no_args_is_help=True)
dlq_app = typer.Typer(help="The dead-letter topic.", no_args_is_help=True)
credentials_app = typer.Typer(help="Credentials for the services' APIs: household, member, operator.",
                              no_args_is_help=True)
app.add_typer(household_app, name="household")
app.add_typer(member_app, name="member")
app.add_typer(ritual_app, name="ritual")
app.add_typer(dlq_app, name="dlq")
app.add_typer(credentials_app, name="credentials")

console = Console()
err = Console(stderr=True)


def fail(message: str, hint: str | None = None) -> None:
    err.print(f"[bold red]error:[/] {message}")
    if hint:
        err.print(f"[dim]{hint}[/]")
    raise typer.Exit(1)


def emit(data: Any, as_json: bool, human: str) -> None:
    if as_json:
        print(json.dumps(data, default=str, indent=2))
    else:
        console.print(human)


def the_household() -> uuid.UUID:
    household = current_household()
    if household is None:
        fail("no household yet", "create one first: attune household create --name 'Ana & Ben' --tz Europe/London")
    return household  # type: ignore[return-value]


def run_command(command: Any, household: uuid.UUID, what: str, timeout: float = 20) -> Any:
    config = CliConfig.load()
    try:
        with console.status(f"{what} (waiting for the scheduler)…"):
            answer = asyncio.run(bus.send_and_wait(config.kafka, command, household_id=household,
                                                   answer_topic=Topic.SCHEDULER_EVENTS, timeout=timeout))
    except bus.CommandRefused as refused:
        fail(f"the scheduler refused this: {refused}")
    except OSError as exc:
        fail(f"cannot reach Kafka at {config.kafka} ({exc})", "is `make run` running? or set ATTUNE_KAFKA")
    if answer is None:
        fail(f"no answer from the scheduler within {timeout:.0f}s",
             "the command was published and may still be applied; check that the scheduler is running")
    return answer


@app.command("catalog")
def catalog(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """The built-in ritual templates: their step, rhythm and sensitivity."""
    rows = [{"key": t.key, "step": t.step, "title": t.title,
             "rhythm": f"{t.rhythm.rrule} at {t.rhythm.local_time}" if t.rhythm else "on demand",
             "sensitive": t.sensitive} for t in TEMPLATES.values()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("template", "step", "title", "default rhythm", "sensitive")
    for row in rows:
        table.add_row(row["key"], row["step"], row["title"], row["rhythm"], "yes (opt-in)" if row["sensitive"] else "")
    console.print(table)


@household_app.command("create")
def household_create(
    name: str = typer.Option(..., help="what the household calls itself"),
    tz: str = typer.Option(..., "--tz", help="IANA time zone, e.g. Europe/London"),
    kind: HouseholdKind = typer.Option(HouseholdKind.COUPLE),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a household; later commands use it."""
    household = uuid.uuid4()
    answer = run_command(RegisterHousehold(name=name, time_zone=tz, kind=kind), household, "registering household")
    remember_household(household, tz)
    emit({"household_id": household, "event": answer.type}, as_json,
         f"[green]✓[/] household [bold]{name}[/] ({tz}) created: {household}")


@household_app.command("erase")
def household_erase(
    yes: bool = typer.Option(False, "--yes", help="really erase: every service deletes all it holds, for good"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Erase the household in every service. It cannot be undone, and nothing can bring it back."""
    household = the_household()
    if not yes:
        fail("erasing deletes everything every service holds about this household, for good",
             "export it first (attune export --out household.json), then run: attune household erase --yes")
    answer = run_command(EraseHousehold(), household, "erasing household")
    emit({"household_id": household, "event": answer.type}, as_json,
         f"[green]✓[/] household {household} erased; the other services follow within seconds")


@app.command("export")
def export(
    out: str | None = typer.Option(None, "--out", help="write the JSON document to this file (default: print it)"),
) -> None:
    """Everything every service holds about the household (scheduler, check-ins, notifier) as one JSON document."""
    from datetime import UTC, datetime

    config = CliConfig.load()
    household = the_household()
    try:
        document = asyncio.run(services.export(config, household, datetime.now(UTC).isoformat()))
    except services.ServiceError as exc:
        fail(str(exc))
    text = json.dumps(document, default=str, indent=2, ensure_ascii=False)
    if out is None:
        print(text)
        return
    from pathlib import Path

    Path(out).write_text(text + "\n", encoding="utf-8")
    err.print(f"[green]✓[/] exported to {out} (it holds private notes: keep it safe)")


@member_app.command("add")
def member_add(
    name: str = typer.Argument(..., help="display name"),
    role: MemberRole = typer.Option(MemberRole.PARTNER),
    push: list[str] = typer.Option([], help="push channel Apprise URL (ntfy://, json://, pover://, …), repeatable"),
    sms: list[str] = typer.Option([], help="SMS channel Apprise URL (twilio://, vonage://, …), repeatable"),
    email: list[str] = typer.Option([], help="email channel Apprise URL (mailto://…), repeatable"),
    locale: str | None = typer.Option(None, help="language and clock of their messages: de, de-DE, en-US, … "
                                                  "(default: English, 24-hour clock)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Add a member to the current household, with their channels in the order given (push, SMS, email)."""
    channels = [("push", url) for url in push] + [("sms", url) for url in sms] + [("email", url) for url in email]
    for index, (kind, url) in enumerate(channels, 1):
        problem = services.channel_problem(url)
        if problem:
            fail(f"{kind} channel #{index} is not usable: {problem}", "nothing was stored; fix the URL and run again")
    if locale is not None and known_locale(locale) is None:
        fail(f"{locale!r} is not a locale Attune knows", "try de, de-DE, en-GB or en-US")
    config = CliConfig.load()
    household = the_household()
    if channels or locale:
        try:
            services.household_credential(config, household)
        except services.ServiceError as exc:
            fail(f"registering channels: {exc}", "nothing was stored")
    member = uuid.uuid4()
    run_command(UpsertMember(member_id=member, display_name=name, role=role), household, f"adding {name}")
    remember_member(name, member)
    registered = []
    if channels or locale:
        with console.status(f"registering {len(channels)} channel(s) with the notifier…"):
            try:
                registered = asyncio.run(services.register_channels(config, household, member, channels,
                                                                    locale=locale))
            except services.ServiceError as exc:
                fail(str(exc), "the member exists; add the channels again with the same URLs once this is fixed")
    emit({"member_id": member, "channels": registered}, as_json,
         f"[green]✓[/] {name} added: {member}" + (f" with {', '.join(c['kind'] for c in registered)}" if registered else ""))


@ritual_app.command("add")
def ritual_add(
    template_key: str = typer.Argument(..., metavar="TEMPLATE", help="see `attune catalog`"),
    time: str | None = typer.Option(None, help="local HH:MM (default: the template's)"),
    days: str | None = typer.Option(None, help="e.g. MO,WE,FR (weekly on those days)"),
    rrule: str | None = typer.Option(None, help="a full RFC 5545 RRULE instead of --days"),
    with_: list[str] = typer.Option(..., "--with", help="participant name or id (repeat)"),
    start: str | None = typer.Option(None, help="first day, YYYY-MM-DD (default today)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Schedule a ritual from a template for the current household."""
    found = template(template_key)
    if found is None:
        fail(f"unknown template {template_key!r}", "list them with: attune catalog")
    if found.rhythm is None and not (rrule or days):
        fail(f"{template_key} is on demand only and is never scheduled")
    household = the_household()
    try:
        participants = [resolve_member(p) for p in with_]
    except LookupError as exc:
        fail(str(exc))
    rule = rrule or (f"FREQ=WEEKLY;BYDAY={days.upper()}" if days else found.rhythm.rrule)  # type: ignore[union-attr]
    command = ScheduleRitual(
        ritual_id=uuid.uuid4(), template=template_key, participants=participants, rrule=rule,
        local_time=time or found.rhythm.local_time,  # type: ignore[union-attr]
        start_date=date.fromisoformat(start) if start else date.today(),
        reminder_offsets_minutes=list(found.reminder_offsets_minutes), catch_up_minutes=found.catch_up_minutes,
    )
    answer = run_command(command, household, f"scheduling {template_key}")
    state = getattr(answer.payload, "state", "")
    emit({"ritual_id": command.ritual_id, "state": state, "next_due_at": getattr(answer.payload, "next_due_at", None)},
         as_json, f"[green]✓[/] {found.title} scheduled ({state}): {command.ritual_id}")


def _ritual_change(kind: type, ritual_id: uuid.UUID, verb: str, as_json: bool) -> None:
    answer = run_command(kind(ritual_id=ritual_id), the_household(), f"{verb} ritual")
    emit({"ritual_id": ritual_id, "event": answer.type}, as_json, f"[green]✓[/] ritual {ritual_id} {verb}")


@ritual_app.command("pause")
def ritual_pause(ritual_id: uuid.UUID, as_json: bool = typer.Option(False, "--json")) -> None:
    """Stop a ritual until it is resumed."""
    _ritual_change(PauseRitual, ritual_id, "paused", as_json)


@ritual_app.command("resume")
def ritual_resume(ritual_id: uuid.UUID, as_json: bool = typer.Option(False, "--json")) -> None:
    """Fire a paused ritual again."""
    _ritual_change(ResumeRitual, ritual_id, "resumed", as_json)


@ritual_app.command("delete")
def ritual_delete(ritual_id: uuid.UUID, as_json: bool = typer.Option(False, "--json")) -> None:
    """Remove a ritual for good."""
    _ritual_change(DeleteRitual, ritual_id, "deleted", as_json)


@app.command("consent")
def consent(
    ritual_id: uuid.UUID,
    member: str = typer.Argument(..., help="member name or id"),
    withdraw: bool = typer.Option(False, "--withdraw", help="opt out instead of in"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Opt a participant in to (or out of) a sensitive ritual."""
    try:
        member_id = resolve_member(member)
    except LookupError as exc:
        fail(str(exc))
    kind = WithdrawConsent if withdraw else GiveConsent
    answer = run_command(kind(ritual_id=ritual_id, member_id=member_id), the_household(), "recording consent")
    emit({"ritual_id": ritual_id, "state": answer.payload.state}, as_json,
         f"[green]✓[/] consent {'withdrawn' if withdraw else 'given'}; the ritual is now {answer.payload.state}")


@app.command("checkin")
def checkin(
    occurrence_id: uuid.UUID,
    member: str = typer.Argument(..., help="member name or id"),
    status: CheckInStatus = typer.Option(CheckInStatus.DONE),
    rating: int | None = typer.Option(None, min=1, max=5, help="closeness 1-5"),
    note: str | None = typer.Option(None, help="a private note (max 2,000 characters)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Record a check-in for an occurrence (published on Kafka, like any other service would)."""
    try:
        member_id = resolve_member(member)
        command = SubmitCheckIn(occurrence_id=occurrence_id, member_id=member_id, status=status, closeness=rating,
                                note=note, source=CheckInSource.API)
    except (LookupError, ValueError) as exc:
        fail(str(exc))
    config = CliConfig.load()
    sent = asyncio.run(bus.publish(config.kafka, command, household_id=the_household()))
    emit({"event_id": sent.event_id}, as_json, f"[green]✓[/] check-in sent ({status.value}); event {sent.event_id}")


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Streaks, adherence, the 5:1 ratio, recent check-ins, and each member's recent deliveries and failures."""
    config = CliConfig.load()
    household = the_household()
    try:
        report = asyncio.run(services.status(config, household, known_members()))
    except services.ServiceError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(report, default=str, indent=2))
        return
    console.print(services.render_status(report))


@app.command("send-test")
def send_test(
    url: str = typer.Argument(..., help="an Apprise URL, e.g. json://127.0.0.1:8100/push/ana"),
    title: str = typer.Option("Attune test", help="title"),
    body: str = typer.Option("If you can read this, Attune can reach you here.", help="body"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Send one message to one channel and report the outcome (the URL is never printed back)."""
    import apprise

    if apprise.Apprise.instantiate(url) is None:
        fail("that is not a valid Apprise URL", "see https://github.com/caronc/apprise/wiki for the URL formats")
    notifier = apprise.Apprise()
    notifier.add(url)
    result = asyncio.run(notifier.async_notify(title=title, body=body))
    ok = bool(result)
    emit({"delivered": ok, "status": str(getattr(result, "status", result))}, as_json,
         "[green]✓ delivered[/]" if ok else f"[red]✗ not delivered[/] ({getattr(result, 'status', result)})")
    if not ok:
        raise typer.Exit(1)


@dlq_app.command("list")
def dlq_list(limit: int = typer.Option(20), as_json: bool = typer.Option(False, "--json")) -> None:
    """What consumers gave up on, newest last, with the reason."""
    from .dlq import read_dead_letters

    config = CliConfig.load()
    letters = asyncio.run(read_dead_letters(config.kafka))[-limit:]
    if as_json:
        print(json.dumps([{"dlq_ref": ref, **letter.model_dump(mode="json")} for ref, letter in letters], indent=2))
        return
    if not letters:
        console.print("The dead-letter topic is empty.")
        return
    table = Table("dlq ref", "from", "consumer", "attempts", "reason")
    for offset, letter in letters:
        table.add_row(str(offset), f"{letter.source_topic}[{letter.partition}]@{letter.offset}", letter.consumer,
                      str(letter.attempts),
                      letter.reason + (f" [bytes sealed by {letter.sealed.service}]" if letter.sealed else ""))
    console.print(table)


@dlq_app.command("replay")
def dlq_replay(
    offsets: list[str] = typer.Argument(None, help="dead-letter refs (partition:offset, from `attune dlq list`) to replay"),
    all_: bool = typer.Option(False, "--all", help="replay every dead letter"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Publish dead letters back to their source topic, bytes, key and headers unchanged. Sealed ones are opened by
    the service that sealed them (an operator credential); those of an erased household can no longer be."""
    from .dlq import replay

    if not offsets and not all_:
        fail("say which dead letters to replay", "attune dlq list shows offsets; or pass --all")
    config = CliConfig.load()
    result = asyncio.run(replay(config.kafka, None if all_ else offsets, config))
    lines = [f"[green]✓[/] replayed {len(result.replayed)} message(s)"]
    lines += [f"[red]✗[/] {ref} not replayed: {why}" for ref, why in sorted(result.refused.items())]
    emit({"replayed": result.replayed, "not_replayed": result.refused}, as_json, "\n".join(lines))
    if result.refused:
        raise typer.Exit(1)


class CredentialScope(StrEnum):
    household = "household"
    member = "member"
    operator = "operator"


@credentials_app.command("keygen")
def credentials_keygen(kid: str = typer.Option(..., help="a key id, e.g. 2027a (1-32 letters, digits, - or _)"),
                       as_json: bool = typer.Option(False, "--json")) -> None:
    """A new Ed25519 key pair: the signing key stays with the issuer, the public key goes to the services."""
    from attune_contracts.credentials import generate_key_pair

    try:
        signing, public = generate_key_pair(kid)
    except ValueError as exc:
        fail(str(exc))
    emit({"signing_key": signing, "public_key": public}, as_json,
         f"signing key (ATTUNE_SIGNING_KEY, keep it secret):\n{signing}\n"
         f"public key (add to ATTUNE_CHECKINS_CREDENTIAL_KEYS and ATTUNE_NOTIFIER_CREDENTIAL_KEYS):\n{public}")


@credentials_app.command("issue")
def credentials_issue(
    scope: CredentialScope = typer.Argument(..., help="household (the household's app and CLI), member (acts as "
                                                      "that member only) or operator (operations, no personal data)"),
    member: str | None = typer.Option(None, help="the member (name or id), for a member credential"),
    household: uuid.UUID | None = typer.Option(None, help="default: this CLI's household"),
    days: int | None = typer.Option(None, min=1, max=3650, help="expire after this many days (default: never; "
                                                                  "revoke with `attune credentials revoke`)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Mint a credential with the signing key (ATTUNE_SIGNING_KEY). Give each person the narrowest one."""
    from datetime import timedelta

    from attune_contracts.credentials import CredentialIssuer

    config = CliConfig.load()
    if not config.signing_key:
        fail("issuing credentials needs the signing key", "set ATTUNE_SIGNING_KEY (from `attune credentials keygen`)")
    try:
        issuer = CredentialIssuer(config.signing_key)  # type: ignore[arg-type]
    except ValueError as exc:
        fail(f"ATTUNE_SIGNING_KEY is not usable: {exc}")
    ttl = timedelta(days=days) if days else None
    if scope is CredentialScope.operator:
        if member or household:
            fail("an operator credential names no household or member")
        token = issuer.operator(ttl=ttl)
        target: dict[str, Any] = {}
    else:
        household_id = household or the_household()
        target = {"household_id": household_id}
        if scope is CredentialScope.member:
            if not member:
                fail("a member credential needs --member NAME_OR_ID")
            try:
                target["member_id"] = resolve_member(member)  # type: ignore[arg-type]
            except LookupError as exc:
                fail(str(exc))
            token = issuer.member(household_id, target["member_id"], ttl=ttl)
        else:
            if member:
                fail("a household credential names no member; for one member use: attune credentials issue member")
            token = issuer.household(household_id, ttl=ttl)
    emit({"scope": scope.value, **target, "credential": token}, as_json, token)


@credentials_app.command("revoke")
def credentials_revoke(as_json: bool = typer.Option(False, "--json")) -> None:
    """Refuse every credential of this household issued until now (household and member); issue new ones after."""
    household = the_household()
    answer = run_command(RevokeHouseholdCredentials(), household, "revoking the household's credentials")
    not_before = getattr(answer.payload, "not_before", None)
    emit({"household_id": household, "not_before": not_before}, as_json,
         f"[green]✓[/] every credential of household {household} issued before {not_before} is refused once "
         "the services have the event (seconds); issue new ones with `attune credentials issue`")


def _register_optional_commands() -> None:
    try:
        from .preview import preview
    except ImportError:
        return
    app.command("preview")(preview)


_register_optional_commands()


if __name__ == "__main__":
    app()
