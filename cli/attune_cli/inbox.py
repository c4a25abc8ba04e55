"""A local inbox for `make run`: receives pushes (Apprise `json://` and `ntfy://`) and email (SMTP), and shows
them as a phone would, newest first, with the one-tap check-in links as buttons.

    python -m attune_cli.inbox --port 8100 --smtp-port 8025
    push channel:  json://127.0.0.1:8100/push/ana      (or ntfy://127.0.0.1:8100/ana)
    email channel: mailto://127.0.0.1:8025?from=attune@localhost&to=ana@localhost&mode=insecure
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import html
import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

LINK = re.compile(r"https?://[^\s<>\"']+/l/[A-Za-z0-9_.\-]+")
_ids = itertools.count(1)


@dataclass
class Item:
    kind: str  # push | email
    to: str
    title: str
    body: str
    html_body: str | None = None
    received_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def links(self) -> list[str]:
        return list(dict.fromkeys(LINK.findall(self.body + " " + (self.html_body or ""))))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "links": self.links}


class Inbox:
    def __init__(self, limit: int = 500) -> None:
        self.items: list[Item] = []
        self.limit = limit
        self.changed = asyncio.Event()

    def add(self, item: Item) -> None:
        self.items.append(item)
        del self.items[: -self.limit]
        self.changed.set()
        self.changed = asyncio.Event()


def _action_label(url: str, body: str) -> str:
    # The notifier words its links "Done: <url>" / "Skip: <url>"; fall back to the link's position.
    before = body.split(url)[0][-40:].lower()
    for word in ("done", "skip", "snooze"):
        if word in before:
            return word.capitalize()
    return "Open"


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Attune inbox</title>
<style>
 body{font-family:system-ui,-apple-system,sans-serif;background:#1f1d2b;margin:0;padding:16px;color:#222}
 .phone{max-width:420px;margin:0 auto;background:#f4f1ee;border-radius:28px;padding:18px 14px;min-height:80vh}
 h1{font-size:18px;text-align:center;margin:4px 0 14px} .empty{text-align:center;color:#777;padding:40px 0}
 .card{background:#fff;border-radius:16px;padding:12px 14px;margin:10px 0;box-shadow:0 1px 3px rgba(0,0,0,.12)}
 .meta{font-size:12px;color:#888;display:flex;justify-content:space-between}
 .title{font-weight:600;margin:4px 0} .body{white-space:pre-wrap;font-size:14px;line-height:1.35}
 .kind{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:#a0522d}
 .actions{display:flex;gap:8px;margin-top:10px} .actions a{flex:1;text-align:center;padding:9px;border-radius:10px;
 background:#6b4fbb;color:#fff;text-decoration:none;font-weight:600} .actions a.skip{background:#999}
</style></head><body><div class="phone"><h1>Attune inbox</h1><div id="list">%s</div></div>
<script>
let last=%d;
async function poll(){try{const r=await fetch('/api/messages?after='+last);const d=await r.json();
 if(d.latest!==last){location.reload();}}catch(e){} setTimeout(poll,1000);} setTimeout(poll,1000);
</script></body></html>"""


def render_card(item: Item) -> str:
    actions = "".join(
        f'<a class="{html.escape(_action_label(url, item.body).lower())}" data-action="'
        f'{html.escape(_action_label(url, item.body).lower())}" href="{html.escape(url)}">'
        f"{html.escape(_action_label(url, item.body))}</a>"
        for url in item.links
    )
    # Lines carrying a one-tap link become the buttons below; the rest is the message.
    visible_body = "\n".join(line for line in item.body.splitlines() if not LINK.search(line)).strip()
    return (
        f'<div class="card" data-id="{item.id}"><div class="meta"><span class="kind">{item.kind}</span>'
        f"<span>to {html.escape(item.to)} · {html.escape(item.received_at[11:19])}Z</span></div>"
        f'<div class="title">{html.escape(item.title)}</div><div class="body">{html.escape(visible_body)}</div>'
        f'{f"<div class=actions>{actions}</div>" if actions else ""}</div>'
    )


def build_app(inbox: Inbox) -> Starlette:
    async def page(request: Request) -> HTMLResponse:
        cards = "".join(render_card(item) for item in reversed(inbox.items))
        latest = inbox.items[-1].id if inbox.items else 0
        return HTMLResponse(PAGE % (cards or '<div class="empty">No messages yet. Reminders land here.</div>',
                                    latest))

    async def messages(request: Request) -> JSONResponse:
        latest = inbox.items[-1].id if inbox.items else 0
        return JSONResponse({"latest": latest, "messages": [i.to_json() for i in reversed(inbox.items)]})

    async def receive_push(request: Request) -> JSONResponse:
        try:
            data = await request.json()
        except json.JSONDecodeError:
            return JSONResponse({"error": "expected a JSON body"}, status_code=400)
        if not isinstance(data, dict):
            return JSONResponse({"error": "expected a JSON object"}, status_code=400)
        to = request.path_params.get("to") or str(data.get("topic") or "someone")
        inbox.add(Item("push", to, str(data.get("title") or ""), str(data.get("message") or data.get("body") or "")))
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/", page),
        Route("/", receive_push, methods=["POST"]),  # ntfy:// posts to / with the topic in the body
        Route("/api/messages", messages),
        Route("/push/{to}", receive_push, methods=["POST"]),
    ])


class _SmtpHandler:
    def __init__(self, inbox: Inbox, loop: asyncio.AbstractEventLoop) -> None:
        self.inbox, self.loop = inbox, loop

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = message.get_body(("plain",))
        rich = message.get_body(("html",))
        item = Item(
            "email", ", ".join(envelope.rcpt_tos), str(message.get("subject", "")),
            text.get_content() if text else "", rich.get_content() if rich else None,
        )
        self.loop.call_soon_threadsafe(self.inbox.add, item)
        return "250 Message accepted for delivery"


async def serve(port: int, smtp_port: int) -> None:
    inbox = Inbox()
    controller = Controller(_SmtpHandler(inbox, asyncio.get_running_loop()), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        server = uvicorn.Server(uvicorn.Config(build_app(inbox), host="127.0.0.1", port=port, log_level="warning"))
        await server.serve()
    finally:
        controller.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Attune's local inbox (pushes and email).")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--smtp-port", type=int, default=8025)
    args = parser.parse_args(argv)
    print(f"inbox on http://127.0.0.1:{args.port}  (SMTP 127.0.0.1:{args.smtp_port})", flush=True)
    asyncio.run(serve(args.port, args.smtp_port))


if __name__ == "__main__":
    main()
