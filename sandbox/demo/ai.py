"""`hitl demo` act: AI assist with a local OpenAI-compatible stand-in (drafts from a Zendesk webhook, masking,
classification and summaries, failing closed). AI assist is switched on for this act only."""

from __future__ import annotations

import json
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bot.ai.kb import KbCache
from bot.ai.llm import llm_from_settings
from bot.ai.tone import tone_flags
from handlers.http.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from sandbox.demo.context import DemoContext
from sandbox.openai_standin import OpenAIStandin
from storage import repo
from storage.db import session_scope

WEBHOOK_SECRET = "demo-zendesk-webhook-secret"
SAMPLE_KB = Path(__file__).parent.parent / "kb"
TICKET = {
    "ticket": {
        "id": 48301,
        "subject": "Parcel marked delivered, not here",
        "latest_comment": "Hi, my order NW-318455 says delivered yesterday but nothing is at my door or with reception. "
        "Please call me on 614-555-0199, or refund the card 4242 4242 4242 4242.",
        "status": "new",
        "updated_at": "2026-11-16T09:58:00Z",
        "url": "northwind.zendesk.com/agent/tickets/48301",
        "requester": {"id": 7301, "name": "Dana Okafor", "email": "dana.okafor@example.com"},
        "updated_by_id": 7301,
    }
}


def _send(ctx: DemoContext, body: dict[str, Any], *, secret: str = WEBHOOK_SECRET) -> httpx.Response:
    raw = json.dumps(body).encode()
    ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return httpx.post(
        f"{ctx.base_url}/v1/webhooks/zendesk",
        content=raw,
        timeout=30,
        headers={
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: signature(secret, ts, raw),
        },
    )


def _review(ctx: DemoContext, review_id: str) -> Any:
    with session_scope(ctx.runtime.engine, readonly=True) as session:
        review = repo.get_review(session=session, review_id=review_id)
        session.expunge(review)
        return review


def _ticket(ctx: DemoContext, ticket_id: str) -> dict[str, Any]:
    return next(t for t in ctx.tickets if t["ticket_id"] == ticket_id)


def act_ai_assist(ctx: DemoContext) -> None:
    """Switch AI assist on against the stand-in, show what it does, switch it off again."""
    ctx.act_heading("AI assist: drafts for a helpdesk without an AI pipeline, summaries, masking")
    runtime, s = ctx.runtime, ctx.style
    standin = OpenAIStandin(api_key="sk-demo").start()
    saved = runtime.settings, runtime.services.llm, runtime.services.kb
    runtime.settings = runtime.settings.model_copy(
        update={
            "openai_api_key": SecretStr("sk-demo"),
            "openai_base_url": standin.base_url,
            "openai_timeout": 2.0,
            "kb_dir": SAMPLE_KB,
            "zendesk_webhook_secret": SecretStr(WEBHOOK_SECRET),
        }
    )
    runtime.services.llm = llm_from_settings(
        runtime.settings, banned_phrases=runtime.policy.tone.banned_phrases
    )
    runtime.services.kb = KbCache(SAMPLE_KB)
    try:
        _webhook(ctx, standin)
        _summary_and_classification(ctx, standin)
        ctx.say(
            s.dim(
                "\n  Tone guardrail: sample draft #48111 says "
                + ", ".join(f"“{p}”" for p in tone_flags(_ticket(ctx, "48111")["draft"], runtime.policy))
                + "; the card flags it for the reviewer."
            )
        )
    finally:
        runtime.settings, runtime.services.llm, runtime.services.kb = saved
        standin.stop()


def _webhook(ctx: DemoContext, standin: OpenAIStandin) -> None:
    s = ctx.style
    resp = _send(ctx, TICKET)
    body = resp.json()
    review = _review(ctx, body["id"])
    ctx.say(
        f"  Zendesk posts ticket #48301 to POST /v1/webhooks/zendesk (signed): HTTP {resp.status_code}, "
        f"{s.route(body['route'])} in {body['tier']}, confidence {review.confidence:.2f} "
        f"({review.extra['prompt_version']}, grounded in {', '.join(review.kb_sources)})"
    )
    for para in review.draft.split("\n\n"):
        ctx.say(textwrap.indent(textwrap.fill(" ".join(para.split()), 96), "  │ "))
    seen = standin.requests("draft")[0]["user"].split("## Customer message\n")[1].split("\n## ")[0]
    ctx.say(s.dim("  What the model saw of the customer: " + textwrap.shorten(seen, 150, placeholder="…")))
    again = _send(ctx, TICKET)
    forged = _send(ctx, TICKET, secret="guessed")
    ctx.say(
        s.dim(
            f"  The same delivery again: HTTP {again.status_code}, same review. A forged signature: "
            f"HTTP {forged.status_code}."
        )
    )
    standin.force_status(500, times=20)
    down = _send(
        ctx, {"ticket": {**TICKET["ticket"], "id": 48302, "updated_at": "2026-11-16T10:05:00Z"}}
    ).json()
    ctx.say(
        f"  The model goes down for #48302: still HTTP 201, {s.route(down['route'])} — "
        + "; ".join(
            r["message"] for r in down["reasons"] if r["code"] in ("ai_unavailable", "classification_failed")
        )
    )
    standin.reset()


def _summary_and_classification(ctx: DemoContext, standin: OpenAIStandin) -> None:
    long = _ticket(ctx, "48112")  # 2,300 characters
    body = {k: v for k, v in long.items() if k not in ("sentiment", "idempotency_key")}
    body.update(ticket_id="48303", idempotency_key="demo-ai-48303")
    created = ctx.api.post("/v1/drafts", json=body).json()
    review = _review(ctx, created["id"])
    ctx.say(
        f"  A pipeline draft without sentiment (#48303): classified {review.sentiment:+.2f} before routing "
        f"→ {ctx.style.route(created['route'])}; reasons: {', '.join(r['code'] for r in created['reasons'])}"
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not _review(ctx, created["id"]).extra.get("summary"):
        time.sleep(0.1)
    summary = _review(ctx, created["id"]).extra.get("summary")
    ctx.say(
        f"  Its {len(long['customer_message']):,}-character message gets a summary on the card after it is "
        f"posted: “{textwrap.shorten(summary or '(not yet)', 120, placeholder='…')}”"
    )
