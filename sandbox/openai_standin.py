"""Local stand-in for an OpenAI-compatible chat-completions server, over real HTTP, for tests and the demo.

`POST /v1/chat/completions` answers like the real API (same JSON shapes, Bearer auth, error bodies,
429 with Retry-After) with deterministic, plausible content chosen from the system prompt's
"Task: <name>" line: summarize, classify, regenerate, draft. Test controls make it fail the way real
servers fail: `force_status`, `set_delay` (timeouts), `set_malformed`, and `requests()` shows exactly
what the model was sent (to check personal data was masked).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
import time
import uuid
from typing import Any, Self

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox.server import ServerThread

JSONDict = dict[str, Any]

_TYPE_WORDS: list[tuple[str, tuple[str, ...]]] = [
    ("safety", ("fire", "burn", "injur", "smoke", "choking", "strangl", "hurt")),
    ("privacy", ("gdpr", "personal data", "personal information", "ccpa", "erasure", "delete my data")),
    ("password_reset", ("password", "log in", "login", "sign in", "reset link", "locked out")),
    ("cancellation", ("cancel", "unsubscribe")),
    ("refund", ("refund", "money back", "return")),
    ("billing", ("charge", "charged", "invoice", "billing", "vat", "payment")),
    ("order_status", ("order", "tracking", "delivered", "package", "parcel", "ship")),
]
_NEGATIVE = (
    "unacceptable",
    "ridiculous",
    "angry",
    "furious",
    "fraud",
    "chargeback",
    "lawyer",
    "worst",
    "terrible",
    "third time",
    "nothing",
    "still not",
    "never",
    "disappointed",
    "scared",
    "!!",
)
_POSITIVE = ("thanks", "thank you", "great", "love", "happy", "appreciate", ":)")


def _sections(user: str) -> dict[str, str]:
    """The `## Title` sections the app writes in its user messages."""
    out: dict[str, str] = {}
    for m in re.finditer(r"^## (.+?)\n(.*?)(?=^## |\Z)", user, re.MULTILINE | re.DOTALL):
        out[m.group(1).strip().lower()] = m.group(2).strip()
    return out


def _first_sentence(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    m = re.match(r"(.+?[.!?])(\s|$)", flat)
    sentence = m.group(1) if m else flat
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def classify_text(text: str, allowed: list[str]) -> JSONDict:
    low = text.lower()
    kind = next((k for k, words in _TYPE_WORDS if k in allowed and any(w in low for w in words)), "other")
    score = 0.1 * sum(low.count(w) for w in _POSITIVE) - 0.3 * sum(low.count(w) for w in _NEGATIVE)
    return {"interaction_type": kind, "sentiment": round(max(-1.0, min(1.0, score)), 2)}


def summarize_text(text: str) -> JSONDict:
    words = len(text.split())
    orders = sorted(set(re.findall(r"\bNW-\d+\b", text)))
    extra = f" Mentions {', '.join(orders)}." if orders else ""
    return {"summary": f"Customer writes ({words} words): {_first_sentence(text)}{extra}"}


def regenerate_text(draft: str, instruction: str) -> JSONDict:
    low = instruction.lower()
    paras = [p for p in re.split(r"\n\s*\n", draft.strip()) if p.strip()]
    if "short" in low and len(paras) > 3:
        paras = [paras[0], paras[1], paras[-1]]
    if "apolog" in low or "sorry" in low:
        paras.insert(1 if len(paras) > 1 else 0, "I'm sorry for the delay in getting back to you.")
    return {"reply": "\n\n".join(paras)}


def _best_snippet_sentences(kb: str) -> list[str]:
    """The sentences of the first knowledge-base snippet: "[source — title]" then its text."""
    first = kb.split("\n\n[")[0]
    text = " ".join(
        line.strip() for line in first.splitlines()[1:] if line.strip() and not line.startswith("- ")
    )
    return [x for x in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text) if x]


def draft_text(sections: dict[str, str]) -> JSONDict:
    name = sections.get("customer first name", "")
    greeting = f"Hi {name}," if name and not name.startswith("(") else "Hello,"
    kb = sections.get("knowledge base", "")
    sentences = _best_snippet_sentences(kb)
    if not sentences or kb.startswith("(no"):
        body = (
            "Thanks for getting in touch. I've passed your message to a colleague who will follow up shortly."
        )
        confidence = 0.3
    else:
        body = "Thanks for getting in touch. " + " ".join(s.strip() for s in sentences[:2])
        confidence = 0.8
    return {"reply": f"{greeting}\n\n{body}\n\nBest,\nThe Support Team", "confidence": confidence}


# What a model that ignores the requested format answers, by `malformed` kind.
_MALFORMED: dict[str, JSONDict | str] = {
    "not_json": "Sure! Here is what you asked for: the customer is unhappy.",
    "schema": {"answer": "no fields you asked for", "sentiment": "very bad"},
    "empty": "",
}


def task_answer(task: str, system: str, user: str) -> JSONDict | str:
    """The stand-in model's answer to one of hitl's tasks, from the prompt's sections."""
    sections = _sections(user)
    message = sections.get("customer message", user)
    if task == "summarize":
        return summarize_text(message)
    if task == "classify":
        m = re.search(r"exactly one of these values: (.+)$", system, re.MULTILINE)
        allowed = [s.strip() for s in m.group(1).split(",")] if m else []
        return classify_text(f"{sections.get('subject', '')}\n{message}", allowed)
    if task == "regenerate":
        return regenerate_text(sections.get("current draft", ""), sections.get("agent's instruction", ""))
    if task == "draft":
        return draft_text(sections)
    return "I can only help with hitl's tasks."


class OpenAIStandin:
    """An OpenAI-compatible server on 127.0.0.1 in a background thread; `base_url` ends in /v1."""

    def __init__(self, *, api_key: str = "sk-test", model: str = "standin-1") -> None:
        self.api_key = api_key
        self.model = model
        self._lock = threading.Lock()
        self._server: ServerThread | None = None
        self._stopping = threading.Event()
        self.reset()
        self.app = self._build_app()

    # ----- lifecycle

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("OpenAIStandin is not started")
        return f"{self._server.url}/v1"

    def start(self) -> Self:
        if self._server is None:
            self._stopping.clear()
            self._server = ServerThread(self.app).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._stopping.set()
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ----- test controls

    def reset(self) -> None:
        """Forget requests and test controls."""
        with self._lock:
            self._log: list[JSONDict] = []
            self._forced: list[tuple[int, float | None]] = []
            self._delay = 0.0
            self._malformed = 0
            self._malformed_kind = "not_json"
            self._scripted: dict[str, list[JSONDict | str]] = {}

    def force_status(self, code: int, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `times` requests with HTTP `code` (and `Retry-After` when given)."""
        with self._lock:
            self._forced += [(code, retry_after)] * times

    def set_delay(self, seconds: float) -> None:
        """Wait this long before answering each request (longer than the client's timeout = a timeout)."""
        with self._lock:
            self._delay = seconds

    def set_malformed(self, times: int = 1, kind: str = "not_json") -> None:
        """The next `times` answers are unusable: "not_json" (prose), "schema" (JSON missing fields) or "empty"."""
        with self._lock:
            self._malformed = times
            self._malformed_kind = kind

    def script(self, task: str, *answers: JSONDict | str) -> None:
        """Answer the next requests for `task` with these contents (dicts are sent as JSON), in order."""
        with self._lock:
            self._scripted.setdefault(task, []).extend(answers)

    def requests(self, task: str | None = None) -> list[JSONDict]:
        """Logged requests: task, system, user, body, status."""
        with self._lock:
            return [copy.deepcopy(e) for e in self._log if task is None or e["task"] == task]

    # ----- the app

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="OpenAI-compatible stand-in")

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> Response:
            raw = await request.body()
            entry: JSONDict = {
                "task": None,
                "system": "",
                "user": "",
                "body": None,
                "status": None,
                "at": time.time(),
            }
            with self._lock:
                self._log.append(entry)
                forced = self._forced.pop(0) if self._forced else None
                delay = self._delay
            try:
                body = json.loads(raw)
                messages = body["messages"]
                system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
                user = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
            except (ValueError, KeyError, TypeError, AttributeError, StopIteration):
                return self._error(
                    entry, 400, "We could not parse the JSON body of your request.", "invalid_request_error"
                )
            m = re.search(r"^Task: (\w+)", system or "", re.MULTILINE)
            entry.update(task=m.group(1) if m else "unknown", system=system, user=user, body=body)
            deadline = time.monotonic() + delay
            while not self._stopping.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(min(0.05, deadline - time.monotonic()))
            if request.headers.get("authorization", "") != f"Bearer {self.api_key}":
                return self._error(
                    entry, 401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
                )
            if forced is not None:
                code, retry_after = forced
                headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
                kind = "rate_limit_exceeded" if code == 429 else "server_error"
                return self._error(entry, code, f"forced {code} by the test", kind, kind, headers)
            return self._answer(entry, entry["task"], system, user)

        return app

    def _error(
        self,
        entry: JSONDict,
        status: int,
        message: str,
        kind: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> JSONResponse:
        entry["status"] = status
        return JSONResponse(
            {"error": {"message": message, "type": kind, "param": None, "code": code}},
            status_code=status,
            headers=headers,
        )

    def _answer(self, entry: JSONDict, task: str, system: str, user: str) -> Response:
        with self._lock:
            malformed = self._malformed > 0
            if malformed:
                self._malformed -= 1
            scripted = self._scripted.get(task, [])
            script = scripted.pop(0) if scripted else None
        content: JSONDict | str
        if malformed:
            content = _MALFORMED[self._malformed_kind]
        elif script is not None:
            content = script
        else:
            content = task_answer(task, system, user)
        text = content if isinstance(content, str) else json.dumps(content)
        entry["status"] = 200
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": len((system + user).split()),
                    "completion_tokens": len(text.split()),
                    "total_tokens": len((system + user + text).split()),
                },
            }
        )
