"""The EPC basic Latin character set: transliterate any text into it, never drop letters.

SEPA banks only have to accept a-z A-Z 0-9 / - ? : ( ) . , ' + and space (EPC217-08). Anything else may be
rejected or garbled, so names and remittance texts go through `to_epc` before they are written into a file.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from text_unidecode import unidecode  # the transliteration table sepaxml itself depends on

_EPC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ ")
_EPC_RE = re.compile(r"[A-Za-z0-9/\-?:().,'+ ]*")

# German letters are spelt out the German way (ü -> ue), not stripped of their dots as unidecode would (ü -> u).
_GERMAN_LOWER = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"}
# Capitals spelt with two letters, in title case by default (Æsa -> Aesa; unidecode would write AEsa) ...
_UPPER_DIGRAPHS = {"Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ẞ": "SS", "Æ": "Ae", "Œ": "Oe", "Ĳ": "Ij"}
# ... and in capitals inside an upper-case word: MÜLLER -> MUELLER, not MUeLLER; STRAßE -> STRASSE.
_CAPS_RE = re.compile(r"[ÄÖÜẞßÆŒĲ](?=[A-ZÄÖÜÆŒ])|(?<=[A-ZÄÖÜÆŒ])[ÄÖÜẞßÆŒĲ](?![a-zäöüßæœ])")

# Letters unidecode gets wrong for a bank file: the schwa as @ (which would become "(at)"), glottal stops as [?].
_LETTER_OVERRIDES = {"Ə": "E", "ə": "e", "Ǝ": "E", "ǝ": "e", "Ʌ": "V", "ʌ": "v", "Ɂ": "'", "ɂ": "'"}

# Characters outside the EPC set mapped to their nearest neighbour inside it; anything not listed (and not a
# letter) becomes a space.
_ASCII_NEIGHBOURS = {
    "&": "+",
    "_": "-",
    '"': "'",
    "`": "'",
    ";": ",",
    "!": ".",
    "@": "(at)",
    "[": "(",
    "]": ")",
    "{": "(",
    "}": ")",
    "<": "(",
    ">": ")",
    "\\": "/",
    "|": "/",
    "~": "-",
    "«": "'",  # unidecode would make << of it, which maps to ((
    "»": "'",
    "‹": "'",
    "›": "'",
    "„": "'",
}


def _epc_only(text: str) -> str:
    """Map each character of ASCII `text` (unidecode's output) into the EPC set."""
    return "".join(c if c in _EPC_CHARS else _ASCII_NEIGHBOURS.get(c, " ") for c in text)


class _Table(dict[int, str]):
    """A `str.translate` table filled on first use of each code point (there are too many to build up front)."""

    def __missing__(self, codepoint: int) -> str:
        char = chr(codepoint)
        if char in _EPC_CHARS:
            out = char
        elif char in _GERMAN_LOWER:
            out = _GERMAN_LOWER[char]
        elif char in _UPPER_DIGRAPHS:
            out = _UPPER_DIGRAPHS[char]
        elif char in _LETTER_OVERRIDES:
            out = _LETTER_OVERRIDES[char]
        elif char in _ASCII_NEIGHBOURS:
            out = _ASCII_NEIGHBOURS[char]
        elif char.isspace() or unicodedata.category(char).startswith("C"):
            out = " "  # tabs, line breaks, control characters
        else:
            # unidecode may itself produce ASCII outside the set (“ -> ", ¥ -> Y=), hence the second mapping.
            out = _epc_only(unidecode(char))
        self[codepoint] = out
        return out


_TABLE = _Table()


@lru_cache(maxsize=65536)  # names and texts repeat a lot within a payment run
def to_epc(text: str, max_len: int | None = None) -> str:
    """Transliterate `text` into the EPC basic Latin set and cut it to at most `max_len` characters.

    German umlauts and ß are spelt out (`Jörg Österle & Söhne` -> `Joerg Oesterle + Soehne`), other letters are
    transliterated (é -> e, ł -> l, ø -> o, æ -> ae), `&` becomes `+`, other symbols their nearest neighbour in
    the set (`_` -> `-`, `"` -> `'`, `@` -> `(at)`) or a space. Runs of spaces are collapsed and the result is
    stripped. Text with nothing transliterable (emoji only) gives an empty string; this never raises.
    """
    if max_len is not None and max_len < 0:
        raise ValueError(f"max_len must not be negative, got {max_len}")
    if not _EPC_RE.fullmatch(text):
        # NFC first, so that a decomposed "o" + combining diaeresis is recognised as ö.
        composed = unicodedata.normalize("NFC", text)
        composed = _CAPS_RE.sub(lambda m: _UPPER_DIGRAPHS.get(m.group(), "SS").upper(), composed)
        text = composed.translate(_TABLE)
    out = " ".join(text.split())
    if max_len is not None and len(out) > max_len:
        out = out[:max_len].rstrip()  # a cut may end on a space
    return out


def is_epc(text: str) -> bool:
    """True if every character of `text` is in the EPC basic Latin set (the empty string is)."""
    return _EPC_RE.fullmatch(text) is not None
