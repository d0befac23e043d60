"""The model behind AI assist: any OpenAI-compatible chat-completions server, through the openai client.

One retry policy: the client's own (`max_retries=1`, honouring Retry-After), never tenacity on top.
Every call has a timeout. Every failure (timeout, 429, 5xx, connection, refusal, output that is not the
JSON the prompt asked for) surfaces as one `LLMUnavailable`, so callers have one thing to handle: go on
without the model, toward humans. Customer-derived text is masked (bot/pii.py) before it leaves.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import openai
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.ai.pii import mask_pii, mask_pii_found, restore_pii
from bot.ai.prompts import Prompt, load_prompt

if TYPE_CHECKING:
    from bot.ai.kb import Snippet
    from bot.app.settings import Settings

log = logging.getLogger("hitl.llm")

MAX_INPUT_CHARS = 12_000
PROMPT_NAMES = ("summarize", "classify", "regenerate", "draft")
OTHER_TYPE = "other"


class LLMUnavailable(Exception):
    """The model could not give a usable answer; `reason` is timeout, rate_limited, server_error,
    connection, malformed or http_<status>."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SummaryOut(_Out):
    summary: str = Field(min_length=1, max_length=800)


class Classification(_Out):
    """What classification returns: an interaction type from the policy (or "other") and a sentiment."""

    interaction_type: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    sentiment: float = Field(ge=-1, le=1, allow_inf_nan=False)


class ReplyOut(_Out):
    reply: str = Field(min_length=1, max_length=20_000)


class DraftOut(ReplyOut):
    confidence: float = Field(ge=0, le=1, allow_inf_nan=False)


@dataclass(frozen=True)
class TicketText:
    """What drafting needs to know about a ticket."""

    message: str
    subject: str | None = None
    customer_name: str | None = None


T = TypeVar("T", bound=_Out)


def _strip_fences(content: str) -> str:
    m = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", content, re.DOTALL)
    return m.group(1) if m else content


def _section(title: str, body: str) -> str:
    return f"## {title}\n{body.strip()}\n"


def _snippets_text(snippets: Sequence[Snippet]) -> str:
    return "\n\n".join(s.render() for s in snippets) if snippets else "(no knowledge-base snippets)"


def _failure(exc: openai.OpenAIError) -> tuple[str, str]:
    """The `LLMUnavailable` reason and message for an openai client error."""
    if isinstance(exc, openai.APITimeoutError):
        return "timeout", "the model did not answer in time"
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited", "the model is rate-limited (429)"
    if isinstance(exc, openai.APIStatusError):
        reason = "server_error" if exc.status_code >= 500 else f"http_{exc.status_code}"
        return reason, f"the model answered HTTP {exc.status_code}"
    if isinstance(exc, openai.APIConnectionError):
        return "connection", "the model server could not be reached"
    return "error", f"the model call failed: {type(exc).__name__}"


class LLM:
    """The model calls AI assist makes; each raises `LLMUnavailable` instead of blocking or guessing."""

    def __init__(
        self, *, client: openai.OpenAI, model: str, mask: bool = True, banned_phrases: Sequence[str] = ()
    ) -> None:
        self.client = client
        self.model = model
        self.mask = mask
        self.banned_phrases = list(banned_phrases)
        self.prompts: dict[str, Prompt] = {name: load_prompt(name) for name in PROMPT_NAMES}

    def prompt_version(self, name: str) -> str:
        """The version string of a prompt, e.g. "draft.v1", stored with what it produced."""
        return self.prompts[name].version

    # ------------------------------------------------------------------ calls

    def summarize(self, text: str, *, timeout: float | None = None) -> str:
        """Two short sentences saying what the customer wants."""
        user = _section("Customer message", self._masked(text))
        out = self._call(
            "summarize", self.prompts["summarize"].render(), user, SummaryOut, timeout=timeout, max_tokens=400
        )
        return out.summary.strip()

    def classify(
        self,
        text: str,
        *,
        interaction_types: Sequence[str],
        subject: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Classification:
        """Interaction type (one of `interaction_types` or "other") and sentiment from -1 to 1."""
        allowed = list(dict.fromkeys([*interaction_types, OTHER_TYPE]))
        system = self.prompts["classify"].render(interaction_types=", ".join(allowed))
        user = (_section("Subject", self._masked(subject)) if subject else "") + _section(
            "Customer message", self._masked(text)
        )
        out = self._call(
            "classify", system, user, Classification, timeout=timeout, max_retries=max_retries, max_tokens=300
        )
        kind = out.interaction_type.lower()
        if kind not in allowed:
            raise LLMUnavailable(
                f"the model chose interaction type {kind!r}, not one of the policy's", reason="malformed"
            )
        return Classification(interaction_type=kind, sentiment=out.sentiment)

    def regenerate(
        self,
        *,
        draft: str,
        instruction: str,
        kb_snippets: Sequence[Snippet],
        customer_message: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """The draft rewritten to the reviewer's instruction, grounded in the snippets.

        Details the draft itself held (already shown in Slack) are put back where the model kept their
        placeholder; the customer's own details never are.
        """
        system = self.prompts["regenerate"].render(banned_phrases=self._banned())
        masked_draft, found = mask_pii_found(draft[:MAX_INPUT_CHARS], enabled=self.mask)
        user = "".join(
            [
                _section("Customer message", self._masked(customer_message)) if customer_message else "",
                _section("Current draft", masked_draft),
                _section(
                    "Agent's instruction", self._masked(instruction[:1000]) or "(none: improve clarity)"
                ),
                _section("Knowledge base", _snippets_text(kb_snippets)),
            ]
        )
        reply = self._call(
            "regenerate", system, user, ReplyOut, timeout=timeout, max_tokens=1200
        ).reply.strip()
        return restore_pii(reply, found)

    def draft_reply(
        self, ticket: TicketText, kb_snippets: Sequence[Snippet], *, timeout: float | None = None
    ) -> tuple[str, float]:
        """A reply drafted from the snippets, and the model's confidence that it resolves the ticket."""
        system = self.prompts["draft"].render(banned_phrases=self._banned())
        first_name = (ticket.customer_name or "").strip().split(" ")[0][:60]
        user = "".join(
            [
                _section("Customer first name", first_name or "(unknown)"),
                _section("Subject", self._masked(ticket.subject)) if ticket.subject else "",
                _section("Customer message", self._masked(ticket.message)),
                _section("Knowledge base", _snippets_text(kb_snippets)),
            ]
        )
        out = self._call("draft", system, user, DraftOut, timeout=timeout, max_tokens=1200)
        return out.reply.strip(), out.confidence

    # ------------------------------------------------------------------ plumbing

    def _masked(self, text: str | None) -> str:
        return mask_pii((text or "")[:MAX_INPUT_CHARS], enabled=self.mask)

    def _banned(self) -> str:
        return ", ".join(f'"{p}"' for p in self.banned_phrases) or "(none listed)"

    def _call(
        self,
        task: str,
        system: str,
        user: str,
        schema: type[T],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_tokens: int = 800,
    ) -> T:
        client = self._client(timeout=timeout, max_retries=max_retries)
        try:
            resp = client.chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                response_format={"type": "json_object"},
                max_completion_tokens=max_tokens,
            )
        except openai.OpenAIError as exc:
            reason, message = _failure(exc)
            raise self._unavailable(task, reason, message) from exc
        content = self._content(task, resp)
        try:
            return schema.model_validate(json.loads(_strip_fences(content)))
        except (json.JSONDecodeError, ValidationError, TypeError) as exc:
            raise self._unavailable(
                task, "malformed", f"the model's answer is not the JSON asked for: {exc}"
            ) from exc

    def _client(self, *, timeout: float | None, max_retries: int | None) -> openai.OpenAI:
        """The client, with this call's timeout and retries when they differ from its defaults."""
        options: dict[str, Any] = {}
        if timeout is not None:
            options["timeout"] = timeout
        if max_retries is not None:
            options["max_retries"] = max_retries
        return self.client.with_options(**options) if options else self.client

    def _content(self, task: str, resp: ChatCompletion) -> str:
        """The answer's text, or `LLMUnavailable` when it is missing or was cut short."""
        choice = resp.choices[0] if resp.choices else None
        content = choice.message.content if choice is not None else None
        if choice is None or not content or choice.finish_reason in ("length", "content_filter"):
            why = choice.finish_reason if choice is not None else "no choices"
            raise self._unavailable(task, "malformed", f"the model gave no complete answer ({why})")
        return content

    def _unavailable(self, task: str, reason: str, message: str) -> LLMUnavailable:
        log.warning("AI %s unavailable (%s): %s", task, reason, message.splitlines()[0][:300])
        return LLMUnavailable(message, reason=reason)


def llm_from_settings(settings: Settings, *, banned_phrases: Sequence[str] = ()) -> LLM | None:
    """The configured model, or None when OPENAI_API_KEY is not set (the loop then runs without AI)."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key is not None else ""
    if not key:
        return None
    client = openai.OpenAI(
        api_key=key, base_url=settings.openai_base_url or None, timeout=settings.openai_timeout, max_retries=1
    )
    return LLM(
        client=client, model=settings.openai_model, mask=settings.mask_pii, banned_phrases=banned_phrases
    )
