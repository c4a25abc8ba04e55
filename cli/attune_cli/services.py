"""The CLI's calls to the services' HTTP APIs (the check-ins and notifier APIs)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
from attune_contracts.credentials import CredentialIssuer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .config import CliConfig

SELF_ISSUED_TTL = timedelta(minutes=15)


class ServiceError(Exception):
    pass


def household_credential(config: CliConfig, household: UUID) -> str:
    """The household's credential: ATTUNE_HOUSEHOLD_TOKEN, or one minted for 15 minutes with ATTUNE_SIGNING_KEY."""
    if config.household_token:
        return config.household_token
    if config.signing_key:
        try:
            issuer = CredentialIssuer(config.signing_key)
        except ValueError as exc:
            raise ServiceError(f"ATTUNE_SIGNING_KEY is not usable: {exc}") from None
        return issuer.household(household, ttl=SELF_ISSUED_TTL)
    raise ServiceError("this needs the household's credential: set ATTUNE_HOUSEHOLD_TOKEN (whoever holds the "
                       "signing key makes one with `attune credentials issue household`)")


def channel_problem(url: str) -> str | None:
    """Why an Apprise URL cannot be used, without repeating the URL (it holds secrets)."""
    import apprise

    if len(url) > 2000:
        return "longer than 2,000 characters"
    if apprise.Apprise.instantiate(url) is None:
        scheme = url.split("://", 1)[0] if "://" in url else "(none)"
        return f"Apprise does not accept it (scheme {scheme!r}); see the Apprise wiki for the URL format"
    return None


def _explain(response: httpx.Response, what: str) -> ServiceError:
    try:
        body = response.json()
        detail = body.get("detail") or body.get("error")
    except ValueError:
        detail = response.text[:200]
    return ServiceError(f"{what} failed: HTTP {response.status_code}: {detail}")


async def register_channels(config: CliConfig, household: UUID, member: UUID, channels: list[tuple[str, str]],
                            wait_s: float = 20.0, locale: str | None = None) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {household_credential(config, household)}"}
    async with httpx.AsyncClient(base_url=config.notifier_url, headers=headers, timeout=10) as client:
        # The notifier learns members from the scheduler's MemberUpserted event: wait until it has.
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            try:
                found = await client.get(f"/v1/members/{member}/preferences")
            except httpx.HTTPError as exc:
                raise ServiceError(f"cannot reach the notifier at {config.notifier_url} ({exc})") from None
            if found.status_code == 200:
                break
            if found.status_code != 404 or asyncio.get_running_loop().time() > deadline:
                raise _explain(found, "looking the member up in the notifier")
            await asyncio.sleep(0.3)
        if locale:
            response = await client.put(f"/v1/members/{member}/preferences", json={"locale": locale})
            if response.status_code != 200:
                raise _explain(response, f"setting the locale {locale!r}")
        registered = []
        for position, (kind, url) in enumerate(channels):
            response = await client.post(f"/v1/members/{member}/channels",
                                         json={"url": url, "kind": kind, "position": position})
            if response.status_code != 201:
                raise _explain(response, f"registering {kind} channel #{position + 1}")
            registered.append(response.json())
        return registered


async def status(config: CliConfig, household: UUID, members: dict[str, UUID]) -> dict[str, Any]:
    report: dict[str, Any] = {"household_id": str(household)}
    auth = {"Authorization": f"Bearer {household_credential(config, household)}"}
    async with httpx.AsyncClient(base_url=config.checkins_url, timeout=10, headers=auth) as client:
        try:
            summary = await client.get(f"/v1/households/{household}/summary")
            history = await client.get(f"/v1/households/{household}/checkins", params={"page_size": 10})
        except httpx.HTTPError as exc:
            raise ServiceError(f"cannot reach the check-ins service at {config.checkins_url} ({exc})") from None
        if summary.status_code != 200:
            raise _explain(summary, "reading the household summary")
        report["summary"] = summary.json()
        report["recent_checkins"] = history.json().get("items", []) if history.status_code == 200 else []
    report["deliveries"] = {}
    if members:
        async with httpx.AsyncClient(base_url=config.notifier_url, timeout=10, headers=auth) as client:
            for name, member in members.items():
                try:
                    export = await client.get(f"/v1/members/{member}/export")
                except httpx.HTTPError:
                    continue
                if export.status_code == 200:
                    report["deliveries"][name] = export.json().get("deliveries", [])[-10:]
    return report


EXPORTERS = (("scheduler", "scheduler_url"), ("checkins", "checkins_url"), ("notifier", "notifier_url"))


async def export(config: CliConfig, household: UUID, now: str) -> dict[str, Any]:
    """Everything each service holds about the household, in one document. Any service that cannot answer
    fails the whole export: a partial one would look complete."""
    token = household_credential(config, household)
    document: dict[str, Any] = {"household_id": str(household), "exported_at": now, "services": {}}
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        for service, url_field in EXPORTERS:
            base = getattr(config, url_field)
            try:
                response = await client.get(f"{base}/v1/households/{household}/export")
            except httpx.HTTPError as exc:
                raise ServiceError(f"cannot reach the {service} service at {base} ({exc}); nothing was exported") from None
            if response.status_code == 404:
                document["services"][service] = None  # it holds nothing about this household
            elif response.status_code == 200:
                document["services"][service] = response.json()
            else:
                raise _explain(response, f"exporting from the {service} service")
    return document


def render_status(report: dict[str, Any]) -> Group:
    parts: list[Any] = [Text(f"Household {report['household_id']}", style="bold")]
    summary = report.get("summary", {})
    streaks = summary.get("streaks") or []
    if streaks:
        table = Table("ritual", "streak", "best", title="Streaks")
        for streak in streaks:
            table.add_row(str(streak.get("template")), f"{streak.get('length')} {streak.get('unit')}",
                          str(streak.get("best", "")))
        parts.append(table)
    other = {k: v for k, v in summary.items() if k not in {"streaks", "household_id"} and not isinstance(v, list)}
    if other:
        parts.append(Text("\n".join(f"{k.replace('_', ' ')}: {v}" for k, v in other.items())))
    checkins = report.get("recent_checkins") or []
    table = Table("when", "ritual", "member", "status", "closeness", title="Recent check-ins")
    for item in checkins:
        table.add_row(str(item.get("recorded_at", ""))[:16], str(item.get("template", "")),
                      str(item.get("member_id", ""))[:8], str(item.get("status", "")), str(item.get("closeness") or ""))
    parts.append(table if checkins else Text("No check-ins yet."))
    for name, deliveries in (report.get("deliveries") or {}).items():
        table = Table("purpose", "channel", "status", "attempts", "reason", title=f"Deliveries to {name}")
        for d in deliveries:
            table.add_row(str(d.get("purpose")), str(d.get("channel_kind") or ""), str(d.get("status")),
                          str(d.get("attempts")), str(d.get("reason") or ""))
        parts.append(table)
    return Group(*parts)
