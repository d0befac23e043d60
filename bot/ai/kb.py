"""The knowledge base: a folder of Markdown files (HITL_KB_DIR) split into snippets the model is grounded in.

Snippets are the sections under each `##` heading. Picking them is plain keyword scoring (no embeddings):
a few hundred help articles are searched in microseconds, and the choice is easy to explain. A draft's
`kb_sources` ("kb/returns-policy.md", "returns-policy", or a help-centre URL ending in the file's stem)
pick files directly.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MAX_SNIPPET_CHARS = 1500
TOP_K = 3

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = frozenset(
    {
        "a",
        "about",
        "after",
        "again",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "before",
        "being",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "don't",
        "for",
        "from",
        "get",
        "got",
        "had",
        "has",
        "have",
        "hello",
        "hi",
        "how",
        "i",
        "i'm",
        "if",
        "in",
        "into",
        "is",
        "it",
        "it's",
        "its",
        "just",
        "me",
        "my",
        "no",
        "not",
        "now",
        "of",
        "on",
        "or",
        "our",
        "out",
        "please",
        "so",
        "than",
        "thank",
        "thanks",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "they",
        "this",
        "to",
        "too",
        "up",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
    }
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def terms(text: str) -> list[str]:
    """Lower-case word stems without stop words: what scoring compares."""
    return [_stem(w) for w in _WORD_RE.findall(text.lower()) if w not in _STOP and len(w) > 1]


def source_stem(source: str) -> str:
    """The file stem a kb_sources entry names: "kb/returns-policy.md" → "returns-policy"."""
    tail = PurePosixPath(source.split("?")[0].split("#")[0].rstrip("/")).name
    return tail.removesuffix(".md").removesuffix(".markdown").lower()


@dataclass(frozen=True)
class Snippet:
    source: str  # "kb/<file>.md", the form drafts name in kb_sources
    title: str
    text: str
    terms: Counter[str] = field(compare=False, repr=False, default_factory=Counter)

    def render(self) -> str:
        return f"[{self.source} — {self.title}]\n{self.text}"


def split_markdown(source: str, markdown: str) -> list[Snippet]:
    """One snippet per `##` section (long sections split by paragraph), titled "Doc title: section"."""
    doc_title = source_stem(source).replace("-", " ").capitalize()
    sections: list[tuple[str, list[str]]] = []
    current: tuple[str, list[str]] = ("", [])
    for line in markdown.splitlines():
        if line.startswith("# "):
            doc_title = line[2:].strip()
        elif line.startswith("## "):
            if "".join(current[1]).strip():
                sections.append(current)
            current = (line[3:].strip(), [])
        else:
            current[1].append(line)
    if "".join(current[1]).strip():
        sections.append(current)
    out: list[Snippet] = []
    for heading, lines in sections:
        title = f"{doc_title}: {heading}" if heading else doc_title
        for chunk in _chunks("\n".join(lines).strip()):
            out.append(
                Snippet(source=source, title=title, text=chunk, terms=Counter(terms(f"{title}\n{chunk}")))
            )
    return out


def _chunks(text: str) -> Iterable[str]:
    buf = ""
    for para in re.split(r"\n\s*\n", text):
        if buf and len(buf) + len(para) + 2 > MAX_SNIPPET_CHARS:
            yield buf
            buf = ""
        buf = f"{buf}\n\n{para}" if buf else para[:MAX_SNIPPET_CHARS]
    if buf:
        yield buf


class KnowledgeBase:
    """Snippets of every Markdown file in a folder, scored by keyword overlap."""

    def __init__(self, snippets: list[Snippet]) -> None:
        self.snippets = snippets
        df: Counter[str] = Counter()
        for s in snippets:
            df.update(set(s.terms))
        n = max(len(snippets), 1)
        self._idf = {t: math.log(1 + n / c) for t, c in df.items()}

    @classmethod
    def from_dir(cls, folder: Path | None) -> KnowledgeBase:
        """Load `folder/*.md` (and subfolders); an unset or missing folder gives an empty knowledge base."""
        snippets: list[Snippet] = []
        if folder is not None and folder.is_dir():
            for path in sorted(folder.rglob("*.md")):
                rel = path.relative_to(folder).as_posix()
                snippets += split_markdown(f"kb/{rel}", path.read_text(encoding="utf-8", errors="replace"))
        return cls(snippets)

    def __len__(self) -> int:
        return len(self.snippets)

    def score(self, snippet: Snippet, query: Counter[str]) -> float:
        """Sum over shared terms of idf × (1 + log tf), normalised a little for long snippets."""
        total = sum(
            self._idf.get(t, 0.0) * (1 + math.log(snippet.terms[t])) for t in query if t in snippet.terms
        )
        return total / math.sqrt(1 + sum(snippet.terms.values()) / 80)

    def search(self, text: str, *, k: int = TOP_K, sources: Iterable[str] = ()) -> list[Snippet]:
        """The `k` best snippets for `text`; limited to the named `sources` files when any of them exist."""
        query = Counter(terms(text))
        wanted = {source_stem(s) for s in sources}
        pool = self._pool(wanted)
        scored = sorted(
            ((self.score(s, query), i, s) for i, s in enumerate(pool)), key=lambda x: (-x[0], x[1])
        )
        best = [s for score, _, s in scored if score > 0][:k]
        if wanted and len(best) < k:
            # Named files are picked even when no word matches: the pipeline said they are relevant.
            best += _from_sources([s for _, _, s in scored if s not in best], wanted)[: k - len(best)]
        return best

    def _pool(self, wanted: set[str]) -> list[Snippet]:
        """The snippets of the wanted files, or all of them when none is wanted or none of those exists."""
        pool = _from_sources(self.snippets, wanted) if wanted else []
        return pool or self.snippets


def _from_sources(snippets: Iterable[Snippet], wanted: set[str]) -> list[Snippet]:
    return [s for s in snippets if source_stem(s.source) in wanted]


class KbCache:
    """The knowledge base of a folder, reloaded when a file in it changes (checked at most every few seconds)."""

    def __init__(self, folder: Path | None, *, check_every: float = 5.0) -> None:
        self.folder = folder
        self.check_every = check_every
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[str, float], ...] | None = None
        self._checked_at = -math.inf
        self._kb = KnowledgeBase([])

    def _fingerprint(self) -> tuple[tuple[str, float], ...]:
        if self.folder is None or not self.folder.is_dir():
            return ()
        return tuple((str(p), p.stat().st_mtime) for p in sorted(self.folder.rglob("*.md")))

    def get(self, now: float | None = None) -> KnowledgeBase:
        import time

        t = time.monotonic() if now is None else now
        with self._lock:
            if t - self._checked_at >= self.check_every:
                self._checked_at = t
                stamp = self._fingerprint()
                if stamp != self._stamp:
                    self._stamp = stamp
                    self._kb = KnowledgeBase.from_dir(self.folder)
            return self._kb
