"""Slack's text limits, in one place: every builder escapes first and trims after, through these functions.

Outside text (customer, AI draft, summary, names, reviewer comments) goes through `mrkdwn()` for mrkdwn
objects or `plain()` for plain_text objects; text a builder composed itself (already escaped, holding our
own `<@U…>` mentions, `<!date…>` tokens and links) goes through `fit()`, which never cuts inside an
`&amp;` entity or a `<…>` token. Lone surrogates (which cannot be encoded as UTF-8 JSON) become U+FFFD.
Numbers are Slack's (see /work/shared/slack/FACTS.md); slack_sdk checks several of them again when the
blocks are serialised.
"""

from __future__ import annotations

import re

SECTION_TEXT = 3000
SECTION_FIELD = 2000
CONTEXT_TEXT = 2000
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
OPTION_TEXT = 75
OPTION_VALUE = 150
INPUT_LABEL = 2000
INPUT_HINT = 2000
PLACEHOLDER = 150
INPUT_VALUE = 3000  # plain_text_input max_length and initial_value
MODAL_TITLE = 24  # and the submit / close button labels
PRIVATE_METADATA = 3000
FALLBACK_TEXT = 3000  # the message `text`: Slack truncates at 40,000, a notification shows far less

ELLIPSIS = "…"
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# Units `fit` never splits: an entity, or a <…> token (mention, date, link) we composed.
_UNIT_RE = re.compile(r"&(?:amp|lt|gt);|<[^<>\n]{0,3000}>")


def clean(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD (Slack's JSON must be valid UTF-8)."""
    return _SURROGATE_RE.sub("\ufffd", text)


def escape(text: str) -> str:
    """Escape `&`, `<` and `>` (all Slack asks), making mentions and links in the text inert."""
    return "".join(_ESCAPES.get(ch, ch) for ch in clean(text))


def fit(text: str, limit: int) -> str:
    """Composed mrkdwn cut to `limit` characters with "…", never inside an entity or a `<…>` token."""
    text = clean(text)
    if len(text) <= limit:
        return text
    cut = max(limit - len(ELLIPSIS), 0)
    for unit in _UNIT_RE.finditer(text, 0, min(len(text), cut + 3002)):
        if unit.end() > cut:
            cut = min(cut, unit.start())
            break
    return text[:cut].rstrip() + ELLIPSIS


def trimmed(text: str, limit: int) -> tuple[str, bool]:
    """`fit(text, limit)` and whether anything was cut."""
    out = fit(text, limit)
    return out, out != clean(text)


def mrkdwn(raw: str, limit: int) -> str:
    """Outside text for a mrkdwn object: escaped first, then trimmed to `limit`."""
    return fit(escape(raw), limit)


def mrkdwn_trimmed(raw: str, limit: int) -> tuple[str, bool]:
    """`mrkdwn(raw, limit)` and whether it was trimmed."""
    return trimmed(escape(raw), limit)


def plain(raw: str, limit: int) -> str:
    """Outside text for a plain_text object (no escaping there): cleaned, then trimmed to `limit`."""
    text = clean(raw)
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ELLIPSIS), 0)].rstrip() + ELLIPSIS


def nonblank(text: str) -> str:
    """Slack refuses empty text objects: a single space stands in."""
    return text if text.strip() else " "
