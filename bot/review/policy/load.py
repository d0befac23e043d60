"""Reading a policy file: YAML in, a validated `Policy` out, or a `PolicyError` naming each bad key and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from bot.review.policy.model import Policy

MAX_PROBLEMS = 8  # the first few are what a person fixes first; the rest usually follow from them


class PolicyError(Exception):
    """A policy file that cannot be used, with the key and line that are wrong."""


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line each mapping key and sequence item was written on, by its path from the top."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = path + (str(k.value),)
                lines[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines[path + (str(i),)] = v.start_mark.line + 1
                walk(v, path + (str(i),))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def _read_yaml(text: str, source: str) -> dict[Any, Any]:
    """The YAML as a mapping, or a `PolicyError` with the line YAML stumbled on."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise PolicyError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy file is a YAML mapping with at least `defaults` and `tiers`")
    return data


def _line_of(loc: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> int | None:
    """The line of the deepest key of `loc` that was written in the file."""
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _problem(err: ErrorDetails, lines: dict[tuple[str, ...], int], source: str) -> str:
    """One validation error as `source:line: dotted.key: message`."""
    loc = tuple(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    key = ".".join(loc) or "(top)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (a typo? see docs/policy.md for the keys a policy may have)"
    return f"{source}:{_line_of(loc, lines) or '?'}: {key}: {msg}"


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Parse and validate policy YAML, naming the key and line of the first problems."""
    data = _read_yaml(text, source)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        lines = _key_lines(text)
        problems = [_problem(err, lines, source) for err in exc.errors()[:MAX_PROBLEMS]]
        raise PolicyError("\n".join(problems)) from exc


def load_policy(path: Path | str) -> Policy:
    """Read and validate a policy file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{p}: cannot read the policy file ({exc.strerror})") from exc
    return parse_policy(text, str(p))
