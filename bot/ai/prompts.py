"""Prompts as versioned files (bot/ai/prompts/NAME.vN.md), so every model-made text names the prompt behind it.

A prompt file starts with front-matter naming its version:

    ---
    name: draft
    version: draft.v1
    ---
    Task: draft
    ...

To change a prompt, add `NAME.v2.md` rather than editing v1: feedback rows keep pointing at the text
that produced them, and `load_prompt(NAME)` picks the highest version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template

_FILE_RE = re.compile(r"^(?P<name>[a-z_]+)\.v(?P<n>\d+)\.md$")


class PromptError(Exception):
    """A prompt file that is missing or malformed."""


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    text: str

    def render(self, **values: str) -> str:
        """The prompt with `$name` placeholders filled in (unknown ones are left as they are)."""
        return Template(self.text).safe_substitute(values)


def _parse(filename: str, raw: str) -> Prompt:
    m = re.match(r"\A---\n(?P<head>.*?)\n---\n(?P<body>.*)\Z", raw, re.DOTALL)
    if m is None:
        raise PromptError(f"{filename}: a prompt file starts with front-matter (---, name:, version:, ---)")
    head = {
        k.strip(): v.strip()
        for k, _, v in (line.partition(":") for line in m["head"].splitlines())
        if k.strip()
    }
    name, version = head.get("name"), head.get("version")
    fm = _FILE_RE.match(filename)
    if not name or not version or fm is None or name != fm["name"] or version != f"{name}.v{fm['n']}":
        raise PromptError(
            f"{filename}: front-matter must say name: NAME and version: NAME.vN matching the file name"
        )
    return Prompt(name=name, version=version, text=m["body"].strip() + "\n")


@cache
def load_prompt(name: str, version: int | None = None) -> Prompt:
    """The prompt `name` at `version` (default: the highest version shipped)."""
    folder = resources.files("bot.ai").joinpath("prompts")
    found: dict[int, str] = {}
    for entry in folder.iterdir():
        fm = _FILE_RE.match(entry.name)
        if fm and fm["name"] == name:
            found[int(fm["n"])] = entry.name
    if not found:
        raise PromptError(f"no prompt named {name!r} in bot/ai/prompts/")
    n = max(found) if version is None else version
    if n not in found:
        raise PromptError(f"prompt {name!r} has no version {n} (have: {sorted(found)})")
    return _parse(found[n], folder.joinpath(found[n]).read_text(encoding="utf-8"))
