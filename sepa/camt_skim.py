"""Plain camt entries read from their bytes, before libxml2 sees them: `sepa.camt`'s helper for large files.

libxml2 builds a tree of every entry (about 45 elements), and the reader then serialises it to match its
structure (`ShapeCache`): about two thirds of what an entry costs. Once an entry of a structure has been
read that way, `Skimmer` (the file as the parser reads it) finds the next entries of that structure in the
bytes and matches their text directly, with the structure's own pattern. libxml2 is handed, in place of
each run of entries so read, one empty `<Ntry>` with a marker attribute and as many line breaks as they
had: it still parses the whole document (every statement, every other element, the order of entries) and
counts the same lines. An entry is read this way only when nothing about its text could read differently through
libxml2:
  - the document is UTF-8 (declared, or without a declaration), and no comment, CDATA section, processing
    instruction or DOCTYPE has been met so far (their content is not markup: the scan stops for good);
  - the entry is `<Ntry>...</Ntry>` with no prefix and no attribute on `Ntry`, decodes as UTF-8, and holds
    no `&` (entities), no carriage return (line ends are normalised), no `]` (a `]]>` is an error), no
    control character and no byte 0xEF (U+FFFE and U+FFFF are not XML characters);
  - its text matches, in full, the pattern of a structure already met that is read column-wise, with
    attribute values free of `<`, tabs and newlines (the parser would refuse or normalise them).
Anything else is handed to libxml2 unchanged and read as before. The marker carries a random token, so a
file cannot name an entry it did not contain.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import IO, Any

from lxml import etree

from sepa.camt_columns import Plan
from sepa.safe_xml import _SAFE_OPTIONS, Shape, ShapeCache

# An XML declaration of version 1.0 that leaves the encoding UTF-8 (the default, or named).
DECLARATION = re.compile(
    rb"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*([\"'])1\.0\1"
    rb"(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*([\"'])(?i:utf-8)\2)?"
    rb"(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*([\"'])(?:yes|no)\3)?[ \t\r\n]*\?>"
)
_BOM = b"\xef\xbb\xbf"
_START = b"<Ntry>"
_END = b"</Ntry>"
_READ = 64 * 1024  # bytes read from the file at a time: a split (`sepa.camt_split`) must not be read past
_MAX_ENTRY = 64 * 1024  # an entry longer than this is left to libxml2
_MAX_PARSED_AGAIN = 32  # entries read from their text, then parsed after all, before the rest goes to libxml2
_UNSAFE = bytes(sorted({*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *b"&\r]", 0xEF}))
_SAFE = bytes(b for b in range(256) if b not in _UNSAFE)  # deleted by `translate`: what is left is unsafe
_BLANK = b" \t\n"  # between two entries of a run: what the parser drops as blank (a carriage return counts lines)


def is_utf8_document(head: bytes) -> bool:
    """Whether a document starting with `head` is XML 1.0 declared (or taken) as UTF-8."""
    head = head.removeprefix(_BOM)
    if head.startswith(b"<?xml"):
        return DECLARATION.match(head) is not None
    return head[:1] == b"<" and head[1:2] not in (b"", b"\x00")


class Skimmed:
    """An entry read from its text: its structure's plan, the values its row needs (the amount's currency,
    then the texts of `plan.groups`), and where it was."""

    __slots__ = ("line", "plan", "text", "values")

    def __init__(self, plan: Plan, values: tuple[str, ...], text: str, line: int) -> None:
        self.plan = plan
        self.values = values
        self.text = text  # from `<Ntry` on, with the namespaces of the entries' serialisation
        self.line = line


def parse_again(entries: list[Skimmed]) -> list[etree._Element]:
    """Entries read from their text (in file order) parsed after all, their lines numbered as in the file
    (for messages that name them): in one document, behind as many line breaks as came before them, so
    the lines before are parsed once for all of them."""
    parts = [b"<_>"]
    line = 1
    for entry in entries:
        text = entry.text.encode()
        parts += [b"\n" * (entry.line - line), text]
        line = entry.line + text.count(b"\n")
    parts.append(b"</_>")
    parser = etree.XMLParser(remove_blank_text=True, **_SAFE_OPTIONS)
    return list(etree.fromstring(b"".join(parts), parser))


class Skimmer:
    """The file as the parser reads it, with the plain entries of known structures taken out (see above).

    `shapes` are the entries' structures met so far, `plan(shape)` says whether a structure is read
    column-wise (a `Plan`, whose `amount_at` says where the currency is) or not (None), `line` the line
    the file starts on."""

    def __init__(
        self,
        raw: IO[bytes] | Any,
        shapes: ShapeCache,
        plan: Callable[[Shape], Plan | None],
        line: int = 1,
    ) -> None:
        self._raw = raw
        self._shapes = shapes
        self._plan = plan
        self.attribute = f"skim{secrets.token_hex(8)}"
        self._pending = b""  # read, not yet handed on
        self._out = bytearray()  # handed on, read by the parser up to `_at`
        self._at = 0
        self._line = line  # the line at the start of `_pending`
        self._eof = False
        self._on: bool | None = None  # unknown until the document's first bytes are seen
        self._last_byte = b""  # the last byte handed on
        self._handed = 0  # bytes handed on so far
        self._exempt = 0  # the byte-order mark and XML declaration at the start: not a PI
        self._patterns: dict[Shape, tuple[Plan, Any, tuple[int, ...]] | None] = {}
        self._current: tuple[Plan, Any, tuple[int, ...]] | None = None
        self._found: dict[str, list[Skimmed]] = {}
        self._count = 0
        self._again = 0

    def parsed_again(self, count: int) -> None:
        """Entries read from their text had to be parsed after all (their texts are not plain): after a
        few, the rest of the file goes to libxml2, since each batch of them costs a parse of the lines
        before it."""
        self._again += count
        if self._again >= _MAX_PARSED_AGAIN:
            self._on = False

    def take(self, element: etree._Element) -> list[Skimmed] | None:
        """The entries read from their text that `element` stands for, or None for an entry libxml2 read."""
        key = element.get(self.attribute)
        return None if key is None else self._found.pop(key, None)

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._out) - self._at < size):
            self._more()
        end = len(self._out) if size < 0 else min(len(self._out), self._at + size)
        data = bytes(self._out[self._at : end])
        self._at = end
        if self._at >= _READ:  # what was read is dropped now and then, not at every read
            del self._out[: self._at]
            self._at = 0
        return data

    def _more(self) -> None:
        data = self._raw.read(_READ)
        if not data:
            self._eof = True
            self._hand_on(self._pending)
            self._pending = b""
            return
        if self._on is None:  # the document's first bytes: its encoding, and a declaration not to be seen as a PI
            self._on = is_utf8_document(data[:512])
            seen = data.removeprefix(_BOM)
            declaration = DECLARATION.match(seen)
            self._exempt = len(data) - len(seen) + (declaration.end() if declaration else 0)
        self._pending += data
        self._scan()

    def _scan(self) -> None:
        pending, at = self._pending, 0
        run: list[Skimmed] = []  # entries read from their text, one after the other: one marker for all
        breaks = 0  # the line breaks of the run, and of the blanks between its entries
        while self._on:
            start = pending.find(_START, at)
            if start < 0:
                break
            end = pending.find(_END, start)
            if end < 0:
                if len(pending) - start <= _MAX_ENTRY:
                    break  # the rest of it is still to be read
                self._close(run, breaks)
                run, breaks = [], 0
                self._hand_on(pending[at : start + len(_START)])  # too long: left to libxml2
                at = start + len(_START)
                continue
            end += len(_END)
            span, gap = pending[start:end], pending[at:start]
            joins = bool(run) and not gap.translate(None, _BLANK)  # only blanks since the run's last entry
            if not joins:
                self._close(run, breaks)
                run, breaks = [], 0
                self._hand_on(gap)
            skimmed = self._skim(span, self._line + (breaks + gap.count(b"\n") if joins else 0))
            if skimmed is None:
                self._close(run, breaks)
                run, breaks = [], 0
                if joins:
                    self._hand_on(gap)
                self._hand_on(span)
            else:
                run.append(skimmed)
                breaks += (gap.count(b"\n") if joins else 0) + span.count(b"\n")
            at = end
        self._close(run, breaks)
        if not self._on:
            self._hand_on(pending[at:])
            self._pending = b""
            return
        start = pending.find(_START, at)
        keep = start if start >= 0 else max(at, len(pending) - len(_START) + 1)
        self._hand_on(pending[at:keep])
        self._pending = pending[keep:]

    def _close(self, run: list[Skimmed], breaks: int) -> None:
        """Hand on the marker of a run of entries read from their text, as many lines long as they were."""
        if not run:
            return
        key = str(self._count)
        self._count += 1
        self._found[key] = run
        self._out += b'<Ntry %s="%s"%s/>' % (self.attribute.encode(), key.encode(), b"\n" * breaks)
        self._line += breaks

    def _hand_on(self, data: bytes) -> None:
        """Hand bytes on to the parser as they are. Only these can hold a comment, CDATA section, PI or DOCTYPE
        (an entry read from its text has no `<` but its tags'): once one is seen, what looks like markup
        after it may not be, and nothing more is read from the bytes."""
        if self._on and data:
            checked = data[self._exempt - self._handed :] if self._handed < self._exempt else data
            if b"<!" in checked or b"<?" in checked or (self._last_byte == b"<" and checked[:1] in (b"!", b"?")):
                self._on = False
            self._last_byte = data[-1:]
        self._handed += len(data)
        self._out += data
        self._line += data.count(b"\n")

    def _skim(self, span: bytes, line: int) -> Skimmed | None:
        head = self._shapes.head
        if head is None or not self._on or span.translate(None, _SAFE):
            return None
        try:
            text = head + span[len(_START) :].decode("utf-8")
        except UnicodeDecodeError:
            return None
        match = None
        if self._current is not None:
            plan, pattern, wanted = self._current
            match = pattern.fullmatch(text)
        if match is None:
            known = self._shapes.known(text)
            capture = self._capture(known) if known is not None else None
            if capture is None:
                return None
            plan, pattern, wanted = self._current = capture
            match = pattern.fullmatch(text)
            if match is None:
                return None
        return Skimmed(plan, match.group(*wanted), text, line)

    def _capture(self, shape: Shape) -> tuple[Plan, Any, tuple[int, ...]] | None:
        """The plan of a structure, its pattern capturing the currency, and the numbers of the groups its
        row needs in that pattern: the currency's, then the plan's (shifted past it)."""
        if shape not in self._patterns:
            plan = self._plan(shape)
            capturing = shape.capturing(plan.amount_at, "Ccy") if plan is not None else None
            if plan is None or capturing is None:
                self._patterns[shape] = None
            else:
                pattern, at = capturing
                wanted = (at + 1, *(g + 1 if g < at else g + 2 for g in plan.groups))
                self._patterns[shape] = (plan, pattern, wanted)
        return self._patterns[shape]
