"""The SLA pings as people read them in Slack: pure text, tested as data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.slack.blocks.sla import (
    breach_headline,
    breach_outside_text,
    breach_thread_text,
    mention_of,
    moved_thread_text,
    reassigned_dm_text,
    reassigned_thread_text,
    warning_text,
)

DUE = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)


def test_warning_says_how_long_is_left_and_when_it_is_due() -> None:
    text = warning_text(ticket_id="42", due=DUE, now=DUE - timedelta(minutes=3), mention="<@U1>")
    assert text.startswith(":hourglass_flowing_sand: *SLA warning*: 3m left to decide on ticket #42")
    assert "|2026-11-16 10:00:00 UTC>" in text and text.endswith("). <@U1>")


def test_warning_without_anyone_to_mention_has_no_trailing_space() -> None:
    assert not warning_text(ticket_id="42", due=DUE, now=DUE, mention="").endswith(" ")


def test_breach_escalation_and_reminder_read_differently() -> None:
    later = DUE + timedelta(minutes=20)
    first = breach_headline(ticket_id="42", due=DUE, now=DUE, level=1, repeat=0)
    escalated = breach_headline(ticket_id="42", due=DUE, now=later, level=2, repeat=0)
    reminder = breach_headline(ticket_id="42", due=DUE, now=later, level=1, repeat=2)
    assert first.startswith(":rotating_light: *SLA breached*: ticket #42 was due <!date^")
    assert escalated.startswith(":sos: *SLA escalation, level 2*: ticket #42 breached its SLA 20m ago")
    assert reminder.startswith(":rotating_light: *SLA breached 20m ago* (level 1, reminder 2)")


def test_breach_ping_asks_for_a_decision_in_the_thread() -> None:
    assert breach_thread_text("Head", "") == "Head. please approve, edit, take over or reject it."
    assert breach_thread_text("Head", "<@U1>") == "Head. <@U1> please approve, edit, take over or reject it."


def test_breach_ping_outside_the_card_names_its_channel_and_links_the_ticket() -> None:
    text = breach_outside_text("Head", channel="#tier-1", ticket_url="https://x.test/t/42", mention="<@U1>")
    assert text == "Head in #tier-1. <https://x.test/t/42|open ticket> <@U1>"
    assert breach_outside_text("Head", channel="#t", ticket_url=None, mention="") == "Head in #t."


def test_ticket_ids_and_channels_cannot_inject_mentions() -> None:
    text = warning_text(ticket_id="<!channel>", due=DUE, now=DUE, mention="")
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "&lt;" in reassigned_dm_text(ticket_id="1", channel="<#C1>")


def test_timeout_notes_say_who_has_it_now_or_where_it_went() -> None:
    assert reassigned_thread_text(ticket_id="42", waited=timedelta(minutes=30), to="U9").endswith(
        "ticket #42 is reassigned to <@U9>."
    )
    assert mention_of("S123") == "<!subteam^S123>" and mention_of("<@U1>") == "<@U1>"
    moved = moved_thread_text(
        waited=timedelta(hours=1), channel="#tier-2", tier="priority", sla=timedelta(hours=2)
    )
    assert (
        moved == ":arrow_right: *No decision 1h after the SLA breach*: moved to #tier-2 (priority, SLA 2h)."
    )
