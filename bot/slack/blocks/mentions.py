"""Report lines that name a person: everything escaped, except the user mentions the app itself wrote."""

from __future__ import annotations

import re

from bot.slack.blocks.limits import escape

# Only a whole `<@U…>` / `<@W…>` token survives: no label, no links, no `<!channel>`.
_MENTION = re.compile(r"&lt;@([UW][A-Z0-9]{2,20})&gt;")


def escape_keeping_mentions(text: str) -> str:
    """`escape(text)` with `<@U123>` mentions left live (reports name reviewers and managers by mention)."""
    return _MENTION.sub(r"<@\1>", escape(text))
