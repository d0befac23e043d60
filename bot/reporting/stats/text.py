"""`Stats` in words: the summary (what to look at first), the fields, and the terminal rendering.

Plain text only; `bot.slack.blocks.reports` escapes and lays it out for Slack.
"""

from __future__ import annotations

from collections import Counter

from bot.reporting.format import count, dates_label, format_table, pct, pct1, plural, secs, span_label
from bot.reporting.stats.model import ROUTES, Counts, Stats

TABLE_COLUMNS = ("type", "vol", "auto", "human", "appr", "edit", "t/o", "rej", "error", "QA", "SLA✗")
NO_DATA = "No drafts or decisions in this period."
LOOK_AT_TYPES = 2  # types named in the summary's "Look at" line


def period_label(stats: Stats) -> str:
    return f"last {span_label(stats.period)} · {stats.interaction_type or 'all types'}"


def stats_dates(stats: Stats) -> str:
    return dates_label(stats.since, stats.until)


def has_data(stats: Stats) -> bool:
    """Anything drafted or decided in the period."""
    return bool(stats.by_type) or stats.total.volume > 0 or stats.total.decided > 0


def auto_sent_share(c: Counts) -> float | None:
    """Drafts of the period routed straight to the customer, of all drafts."""
    return c.routed.get("auto_send", 0) / c.volume if c.volume else None


def headline(stats: Stats) -> str:
    """`1,240 drafts in 7d · 62% auto-sent · SLA breached 4`: the period in one line."""
    t = stats.total
    return (
        f"{count(t.volume)} drafts in {span_label(stats.period)} · {pct(auto_sent_share(t))} auto-sent · "
        f"SLA breached {count(t.sla_breached)}"
    )


def error_line(itype: str, c: Counts) -> str:
    """`order_status (error rate 40%, 2 of 5 judged)`."""
    return f"{itype} (error rate {pct(c.error_rate)}, {c.errors} of {c.judged} judged)"


def look_at(stats: Stats) -> list[str]:
    """What deserves a look first: the types with the most AI errors humans caught, the overdue queue."""
    worst = sorted(
        ((c.error_rate or 0.0, itype, c) for itype, c in stats.by_type.items() if c.errors),
        key=lambda x: (-x[0], x[1]),
    )
    items = [error_line(itype, c) for _, itype, c in worst[:LOOK_AT_TYPES]]
    if stats.pending_overdue:
        items.append(f"{plural(stats.pending_overdue, 'review')} past SLA now")
    return items


def look_at_line(stats: Stats) -> str:
    """`Look at: refund (error rate 18%, 9 of 50 judged) · 2 reviews past SLA now`, or all clear."""
    items = look_at(stats)
    if items:
        return "Look at: " + " · ".join(items)
    if not has_data(stats):
        return NO_DATA
    return "Nothing stands out: no AI errors caught and no review past its SLA."


def qa_human_line(c: Counts) -> str | None:
    """QA defect rates of auto-sent and of human-approved replies side by side (None: no human ones rated)."""
    if not c.qa_human_rated:
        return None
    auto = pct1(c.qa_defect / c.qa_rated) if c.qa_rated else "—"
    human = pct1(c.qa_human_defect / c.qa_human_rated)
    return f"QA defects: auto-sent {auto} of {c.qa_rated} rated · human-approved {human} of {c.qa_human_rated} rated"


def _by_tier(stats: Stats) -> str:
    tiers: Counter[str] = Counter()
    for (_, tier), n in stats.volume.items():
        tiers[tier] += n
    return " · ".join(f"{k} {n}" for k, n in tiers.most_common()) or "—"


def _qa_line(stats: Stats) -> str:
    t = stats.total
    if t.qa_rated:
        return f"{t.qa_rated} rated: {t.qa_good} good, {t.qa_defect} defect (pass {pct(t.qa_pass_rate)})"
    return f"none rated ({t.auto_send} auto-sent)"


def summary_lines(stats: Stats) -> list[tuple[str, str]]:
    """(label, value) pairs of the terminal rendering, one line each."""
    t = stats.total
    routes = " · ".join(f"{r} {t.routed.get(r, 0)}" for r in ROUTES)
    decisions = (
        f"{t.human} by humans: approve {pct(t.approve_rate)} · edit {pct(t.edit_rate)} · "
        f"take over {pct(t.take_over_rate)} · reject {pct(t.reject_rate)}; {t.auto_send} auto-sent"
    )
    sla = (
        f"{t.sla_met} met · {t.sla_breached} breached ({pct(t.sla_breach_rate)}); "
        f"queue now: {stats.pending} pending, {stats.pending_overdue} past due"
    )
    defects = " · ".join(f"{k} {n}" for k, n in stats.top_defects()) or "none"
    qa = _qa_line(stats) + (f"; {line}" if (line := qa_human_line(t)) else "")
    return [
        ("Volume", f"{t.volume} drafts — {routes}"),
        ("By tier", _by_tier(stats)),
        ("Decisions", decisions),
        ("Time to decision", f"median {secs(stats.median_seconds)} · p90 {secs(stats.p90_seconds)}"),
        ("SLA", sla),
        (
            "AI error rate",
            (
                f"{pct(t.error_rate)} ({plural(t.reject, 'reject')} + {plural(t.heavy_edits, 'heavy edit')} "
                f"of {t.judged} judged)"
            ),
        ),
        ("QA of auto-sent", qa),
        ("Top defects", defects),
    ]


def stats_fields(stats: Stats) -> list[tuple[str, str]]:
    """(label, value) pairs for Slack's two-column fields: short lines that fit a phone."""
    t = stats.total
    routes = " · ".join(f"{r.replace('_', '-')} {count(t.routed.get(r, 0))}" for r in ROUTES)
    qa = _qa_line(stats).replace(" (pass", "\n(pass")
    if t.qa_human_rated:
        qa += f"\nhuman-approved: {t.qa_human_rated} rated, {pct1(t.qa_human_defect / t.qa_human_rated)} defects"
    defects = "\n".join(f"{k} {n}" for k, n in stats.top_defects(3)) or "none"
    return [
        ("Volume", f"{count(t.volume)} drafts\n{routes}"),
        (
            "Decisions",
            f"{count(t.human)} by humans · {count(t.auto_send)} auto-sent\n"
            f"approve {pct(t.approve_rate)} · edit {pct(t.edit_rate)}\n"
            f"take over {pct(t.take_over_rate)} · reject {pct(t.reject_rate)}",
        ),
        ("Time to decision", f"median {secs(stats.median_seconds)}\np90 {secs(stats.p90_seconds)}"),
        (
            "SLA",
            f"{t.sla_met} met · {t.sla_breached} breached ({pct(t.sla_breach_rate)})\n"
            f"queue: {stats.pending} pending, {stats.pending_overdue} past due",
        ),
        (
            "AI error rate",
            f"{pct(t.error_rate)}\n{plural(t.reject, 'reject')} + {plural(t.heavy_edits, 'heavy edit')}"
            f"\nof {t.judged} judged",
        ),
        ("QA of auto-sent", qa),
        ("Top defects", defects),
        ("By tier", _by_tier(stats)),
    ]


def type_summary(c: Counts) -> str:
    """`10 drafts · error 40% · QA pass 50% · SLA breached 33%`: one type on one line."""
    parts = [plural(c.volume, "draft"), f"error {pct(c.error_rate)}"]
    if c.qa_rated:
        parts.append(f"QA pass {pct(c.qa_pass_rate)}")
    if c.sla_met or c.sla_breached:
        parts.append(f"SLA breached {pct(c.sla_breach_rate)}")
    return " · ".join(parts)


def type_rows(stats: Stats) -> list[tuple[str, ...]]:
    """One row of TABLE_COLUMNS per interaction type (the terminal's table)."""
    return [
        (
            itype,
            str(c.volume),
            str(c.auto_send),
            str(c.human),
            pct(c.approve_rate),
            pct(c.edit_rate),
            pct(c.take_over_rate),
            pct(c.reject_rate),
            pct(c.error_rate),
            pct(c.qa_pass_rate),
            pct(c.sla_breach_rate),
        )
        for itype, c in stats.by_type.items()
    ]


def render_stats_text(stats: Stats) -> str:
    """Plain text for the terminal (`hitl stats`, the demo): the summary first, then the details."""
    out = [f"hitl stats — {period_label(stats)} ({stats_dates(stats)})"]
    out += [f"  {headline(stats)}", f"  {look_at_line(stats)}", ""]
    width = max(len(k) for k, _ in summary_lines(stats))
    out += [f"  {k.ljust(width)}  {v}" for k, v in summary_lines(stats)]
    if stats.by_type:
        out += ["", "  By interaction type (error = rejects + heavy edits per judged draft; QA = pass rate):"]
        out += ["    " + line for line in format_table(TABLE_COLUMNS, type_rows(stats))]
    elif stats.total.volume == 0:
        out.append("  " + NO_DATA)
    return "\n".join(out)
