"""Masking personal data in customer text shown in Slack or sent to a model.

Each kind is checked the way its issuer checks it, so order numbers, dates and amounts stay readable:
card numbers must pass Luhn, IBANs must pass ISO 7064 mod-97, US SSNs must use a valid area/group/serial,
UK National Insurance numbers must use an allowed prefix. Masking is idempotent: no placeholder can be
read as personal data again. The helpdesk always receives the reviewer's exact text; this is only for
what people in Slack and the model see.
"""

from __future__ import annotations

import re
from collections.abc import Callable

EMAIL = "[email]"
PHONE = "[phone]"
IBAN = "[IBAN]"
NATIONAL_ID = "[national id]"
PLACEHOLDER_RE = re.compile(r"\[(?:email|phone|IBAN|national id|card ••••\d{1,4})\]")

# ---------------------------------------------------------------- checksums


def luhn_valid(digits: str) -> bool:
    """The Luhn check every payment card number passes."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616: 15-34 characters, country letters, check digits, and mod-97 of the rearranged number is 1."""
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", s):
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


# ---------------------------------------------------------------- patterns

_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])"
)

# An IBAN candidate: country, check digits, then alphanumeric chunks, optionally space-separated.
_IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{1,4}){3,8}")

# Card numbers are written as one run of 13-19 digits, or grouped as issuers print them:
# 4-4-4-(1..7) (Visa, Mastercard, Discover, UnionPay), 4-4-4-4-(1..3) (19 digits), 4-6-5 (Amex), 4-6-4 (Diners).
# Runs of digit groups are scanned at every group boundary, so a card next to another number is still found.
_DIGIT_RUN_RE = re.compile(r"(?<!\d)\d+(?:[ -]\d+)*(?!\d)")
_GROUP_RE = re.compile(r"\d+")

_SSN_RE = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
_SSN_KEYWORD_RE = re.compile(
    r"(?i)(\b(?:ssn|social security(?: number| no\.?| #)?)\s*(?:is|:|#)?\s*)(\d{9})(?!\d)"
)
_NINO_RE = re.compile(
    r"(?<![A-Za-z0-9])(?!(?:BG|GB|KN|NK|NT|TN|ZZ))[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)

# Phones: international (+ or 00), North American with separators, or national numbers with a leading 0.
_PHONE_RE = re.compile(
    r"(?<![\w+])(?:"
    r"(?:\+|00(?=[1-9]))\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){2,5}"
    r"|(?:1[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}"
    r"|0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4}"
    r")(?!\w)"
)
_TRAILING_GROUP_RE = re.compile(r"[ .-]?\d{1,5}$")
_PHONE_KEYWORD_RE = re.compile(
    r"(?i)(\b(?:phone|call|tel|mobile|cell|whatsapp|text me|reach me)\b[^\d\n]{0,20})"
    r"(?<!\d)(\d{10,11})(?!\d)"
)


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


Found = dict[str, list[str]]  # placeholder → the original texts it replaced, in order


def _keep(found: Found | None, placeholder: str, original: str) -> str:
    if found is not None:
        found.setdefault(placeholder, []).append(original)
    return placeholder


def _mask_emails(text: str, found: Found | None) -> str:
    return _EMAIL_RE.sub(lambda m: _keep(found, EMAIL, m.group(0)), text)


def _mask_ibans(text: str, found: Found | None) -> str:
    out: list[str] = []
    pos = done = 0
    while (m := _IBAN_RE.search(text, pos)) is not None:
        # The pattern may run past the IBAN into a following word ("... 00 and"): try shorter prefixes,
        # each ending where a word ends.
        chunks = m.group(0).split(" ")
        iban_text = None
        for end in range(len(chunks), 0, -1):
            joined = " ".join(chunks[:end])
            after = m.start() + len(joined)
            if iban_valid(joined) and not (after < len(text) and text[after].isalnum()):
                iban_text = joined
                break
        if iban_text is None:
            pos = m.start() + 1
            continue
        out.append(text[done : m.start()])
        out.append(_keep(found, IBAN, iban_text))
        pos = done = m.start() + len(iban_text)
    out.append(text[done:])
    return "".join(out)


def _card_shaped(lengths: list[int], seps: set[str]) -> bool:
    if len(lengths) == 1:
        return 13 <= lengths[0] <= 19
    if len(seps) != 1:
        return False
    head, last = lengths[:-1], lengths[-1]
    return (
        (head == [4, 4, 4] and 1 <= last <= 7)
        or (head == [4, 4, 4, 4] and 1 <= last <= 3)
        or (head == [4, 6] and last in (4, 5))
    )


def _mask_cards(text: str, found: Found | None) -> str:
    def repl(run: re.Match[str]) -> str:
        s = run.group(0)
        groups = [(g.start(), g.end()) for g in _GROUP_RE.finditer(s)]
        out, done, i = [], 0, 0
        while i < len(groups):
            for j in range(min(len(groups), i + 5) - 1, i - 1, -1):  # the longest card-shaped span first
                lengths = [e - b for b, e in groups[i : j + 1]]
                seps = {s[groups[k][1]] for k in range(i, j)}
                digits = _digits(s[groups[i][0] : groups[j][1]])
                if _card_shaped(lengths, seps) and luhn_valid(digits):
                    original = s[groups[i][0] : groups[j][1]]
                    out += [s[done : groups[i][0]], _keep(found, f"[card ••••{digits[-4:]}]", original)]
                    done, i = groups[j][1], j + 1
                    break
            else:
                i += 1
        return "".join(out) + s[done:]

    return _DIGIT_RUN_RE.sub(repl, text)


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _mask_national_ids(text: str, found: Found | None) -> str:
    text = _SSN_RE.sub(
        lambda m: (
            _keep(found, NATIONAL_ID, m.group(0))
            if _ssn_ok(m.group(1), m.group(3), m.group(4))
            else m.group(0)
        ),
        text,
    )
    text = _SSN_KEYWORD_RE.sub(
        lambda m: (
            m.group(1) + _keep(found, NATIONAL_ID, m.group(2))
            if _ssn_ok(m.group(2)[:3], m.group(2)[3:5], m.group(2)[5:])
            else m.group(0)
        ),
        text,
    )
    return _NINO_RE.sub(lambda m: _keep(found, NATIONAL_ID, m.group(0)), text)


def _mask_phones(text: str, found: Found | None) -> str:
    def repl(m: re.Match[str]) -> str:
        s = m.group(0)
        # A greedy international match may run into a following date or number: drop trailing groups.
        while len(_digits(s)) > 15 and (shorter := _TRAILING_GROUP_RE.sub("", s)) != s:
            s = shorter
        return _keep(found, PHONE, s) + m.group(0)[len(s) :] if 7 <= len(_digits(s)) <= 15 else m.group(0)

    text = _PHONE_RE.sub(repl, text)
    return _PHONE_KEYWORD_RE.sub(lambda m: m.group(1) + _keep(found, PHONE, m.group(2)), text)


# Order matters: emails first (they may hold digits), IBANs before cards (an IBAN holds a card-length
# digit run), cards and national ids before phones (a phone pattern would eat their digits).
_STEPS: tuple[Callable[[str, Found | None], str], ...] = (
    _mask_emails,
    _mask_ibans,
    _mask_cards,
    _mask_national_ids,
    _mask_phones,
)


def mask_pii(text: str, *, enabled: bool = True) -> str:
    """Mask card numbers, IBANs, national ids, phone numbers and emails (pass `enabled=settings.mask_pii`)."""
    return mask_pii_found(text, enabled=enabled)[0]


def mask_pii_found(text: str, *, enabled: bool = True) -> tuple[str, Found]:
    """`mask_pii`, and what each placeholder replaced (to put a draft's own details back after a rewrite)."""
    found: Found = {}
    if not enabled or not text:
        return text, found
    # Until nothing changes (almost always one round): a masked span can end a match that hid another.
    for _ in range(4):
        before = text
        for step in _STEPS:
            text = step(text, found)
        if text == before:
            break
    return text, found


def placeholders_in(text: str) -> list[str]:
    """The masking placeholders a text contains (a model's rewrite may keep some)."""
    return list(dict.fromkeys(PLACEHOLDER_RE.findall(text)))


def restore_pii(text: str, found: Found) -> str:
    """Put originals back for placeholders that stand for exactly one distinct original; leave the rest."""
    for placeholder, originals in found.items():
        distinct = set(originals)
        if len(distinct) == 1 and placeholder in text:
            text = text.replace(placeholder, distinct.pop())
    return text


def unmask_from(text: str, *sources: str, enabled: bool = True) -> str:
    """Put back into `text` (edited by someone who saw it masked) the details the `sources` held."""
    if not enabled:
        return text
    found: Found = {}
    for source in sources:
        for placeholder, originals in mask_pii_found(source)[1].items():
            found.setdefault(placeholder, []).extend(originals)
    return restore_pii(text, found)
