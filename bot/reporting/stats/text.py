"""`Stats` in words: the summary lines and the per-type table, and the terminal rendering."""

from __future__ import annotations

from collections import Counter

from bot.reporting.format import dates_label, format_table, pct, plural, secs, span_label
from bot.reporting.stats.model import ROUTES, Stats

TABLE_COLUMNS = ("type", "vol", "auto", "human", "appr", "edit", "t/o", "rej", "error", "QA", "SLA✗")
NO_DATA = "No drafts or decisions in this period."


def period_label(stats: Stats) -> str:
    return f"last {span_label(stats.period)} · {stats.interaction_type or 'all types'}"


def stats_dates(stats: Stats) -> str:
    return dates_label(stats.since, stats.until)


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
    """(label, value) pairs shared by the text and the Block Kit renderings."""
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
        ("QA of auto-sent", _qa_line(stats)),
        ("Top defects", defects),
    ]


def type_rows(stats: Stats) -> list[tuple[str, ...]]:
    """One row of TABLE_COLUMNS per interaction type."""
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
    """Plain text for the terminal (`hitl stats`, the demo)."""
    out = [f"hitl stats — {period_label(stats)} ({stats_dates(stats)})"]
    width = max(len(k) for k, _ in summary_lines(stats))
    out += [f"  {k.ljust(width)}  {v}" for k, v in summary_lines(stats)]
    if stats.by_type:
        out += ["", "  By interaction type (error = rejects + heavy edits per judged draft; QA = pass rate):"]
        out += ["    " + line for line in format_table(TABLE_COLUMNS, type_rows(stats))]
    elif stats.total.volume == 0:
        out.append("  " + NO_DATA)
    return "\n".join(out)
