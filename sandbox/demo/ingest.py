"""The demo's first act: the sample drafts arrive at POST /v1/drafts, and each is routed with its reasons."""

from __future__ import annotations

import textwrap
from collections import Counter
from typing import Any

from sandbox.demo.context import DemoContext


def act_ingest(ctx: DemoContext) -> None:
    """Feed the sample through POST /v1/drafts and show where each draft went and why."""
    ctx.act_heading(f"{len(ctx.tickets)} AI drafts arrive at POST /v1/drafts")
    for t in ctx.tickets:
        _ingest_one(ctx, t)
    _show_idempotency(ctx)
    _show_routes(ctx)


def _ingest_one(ctx: DemoContext, t: dict[str, Any]) -> None:
    """Post one sample draft and print its route, tier and the reasons for them."""
    s = ctx.style
    resp = ctx.api.post("/v1/drafts", json=t)
    if resp.status_code not in (200, 201):
        ctx.say(f"  ticket {t['ticket_id']}: HTTP {resp.status_code} {resp.text[:200]}")
        return
    body = resp.json()
    ctx.results.append({**body, "ticket": t})
    why = "; ".join(r["message"] for r in body["reasons"][1:]) or body["reasons"][0]["message"]
    name = (t.get("customer") or {}).get("name", "")
    line = (
        f"  #{t['ticket_id']} {t['interaction_type']:<19} {t['confidence']:.2f}  "
        f"{s.route(body['route']):<{9 + (len(s.route('x')) - 1)}}  {body['tier']:<8} {name[:18]:<18} "
    )
    ctx.say(line + s.dim(textwrap.shorten(why, 90, placeholder="…")))


def _show_idempotency(ctx: DemoContext) -> None:
    again = ctx.api.post("/v1/drafts", json=ctx.tickets[0])
    ctx.say(
        ctx.style.dim(
            f"\n  Sending #{ctx.tickets[0]['ticket_id']} again answers HTTP {again.status_code} with the same review "
            f"({again.json()['id'][:8]}…): idempotent."
        )
    )


def _show_routes(ctx: DemoContext) -> None:
    s = ctx.style
    routes = Counter(r["route"] for r in ctx.results)
    ctx.say(
        f"\n  {s.route('auto_send')}: {routes['auto_send']} (reply goes out, a QA sample is rated)   "
        f"{s.route('review')}: {routes['review']} (a human approves first)   "
        f"{s.route('take_over')}: {routes['take_over']} (a human owns it)"
    )
    codes = Counter(r["code"] for res in ctx.results for r in res["reasons"][1:])
    if codes:
        ctx.say(
            "  Triggers that moved drafts toward humans: "
            + ", ".join(f"{c} ×{n}" for c, n in codes.most_common())
        )
