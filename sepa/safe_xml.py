"""Safe, streaming XML reading for files banks send back (camt.05x, pain.002).

Every parse here uses lxml with `resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False`:
no external entity is ever read, no entity is expanded, nothing is fetched, and libxml2 keeps its limits
on depth and text size. A document with a DOCTYPE is refused outright at its root element (bank files
never have one), and the file size is checked against a limit before any parsing. Every refusal is a
`BankFileError` with a one-line reason naming the file and, where there is one, the line.

Elements are matched on local names only, so a namespace (any version, a bank's own, or none at all) and
its prefix do not matter.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lxml import etree

DEFAULT_MAX_BYTES = 2 * 1024**3  # 2 GiB: a month of statements for a large account is far below this
_SAFE_OPTIONS = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}
_MESSAGE_TYPE_RE = re.compile(r"((?:camt|pain)\.\d{3}\.\d{3}\.\d{2}(?:\.ch\.\d{2})?)")

Source = str | os.PathLike[str] | bytes


class BankFileError(ValueError):
    """A bank file refused as a whole (unsafe, too large, not well-formed, not a supported message)."""


@dataclass(frozen=True)
class Sniffed:
    """What the first two elements of a document say: namespace, root and message element local names."""

    namespace: str | None
    root: str
    message: str
    message_line: int


def source_name(source: Source) -> str:
    """A short name for messages: the file name, or `<bytes>` for a document given in memory."""
    if isinstance(source, bytes | bytearray | memoryview):
        return "<bytes>"
    return Path(source).name


def check_size(source: Source, max_bytes: int) -> None:
    """Refuse a file larger than `max_bytes` (or empty) before any parsing."""
    name = source_name(source)
    if isinstance(source, bytes | bytearray | memoryview):
        size = len(source)
    else:
        try:
            size = os.stat(source).st_size
        except OSError as exc:
            raise BankFileError(f"{name}: cannot read the file ({exc.strerror or exc})") from exc
    if size > max_bytes:
        raise BankFileError(f"{name}: {size:,} bytes is over the limit of {max_bytes:,} bytes; not parsed")
    if size == 0:
        raise BankFileError(f"{name}: the file is empty")


def _open(source: Source) -> IO[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source))
    try:
        return open(source, "rb")
    except OSError as exc:
        raise BankFileError(f"{source_name(source)}: cannot read the file ({exc.strerror or exc})") from exc


def local_name(tag: object) -> str:
    """`{urn:...}Ntry` -> `Ntry`; comments and processing instructions (non-string tags) give ''."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def namespace_of(tag: str) -> str | None:
    """`{urn:...}Ntry` -> `urn:...`; None for an element in no namespace."""
    return tag[1:].partition("}")[0] if tag.startswith("{") else None


def message_type_in(namespace: str | None) -> str | None:
    """The ISO message type named in a namespace (`...:camt.053.001.08` -> `camt.053.001.08`; SIX `.ch.02` kept)."""
    if not namespace:
        return None
    match = _MESSAGE_TYPE_RE.search(namespace)
    return match.group(1) if match else None


def _syntax_error(name: str, exc: Exception) -> BankFileError:
    """A parser error as one line: what went wrong and where, entity trouble called what it is."""
    text = str(getattr(exc, "msg", None) or exc).splitlines()[0] if str(exc) else type(exc).__name__
    line = getattr(exc, "lineno", None)
    where = f" line {line}:" if line else ""
    lowered = text.lower()
    if "entity" in lowered or "amplification" in lowered:
        return BankFileError(f"{name}:{where} refused: entity declarations or references are not allowed ({text})")
    if "premature end" in lowered or "end of data" in lowered:
        return BankFileError(f"{name}:{where} truncated XML, the document ends early ({text})")
    # A file cut in the middle of a tag reads as a malformed tag: say both.
    return BankFileError(f"{name}:{where} not well-formed or truncated XML ({text})")


def _refuse_doctype(name: str, element: etree._Element) -> None:
    """At the root element the prolog is parsed: a DOCTYPE (internal subset, entities, external DTD) is refused."""
    info = element.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise BankFileError(
            f"{name}: line {element.sourceline}: refused: the document has a DOCTYPE (DTDs and entity "
            "declarations are not allowed in bank files)"
        )


def sniff(source: Source) -> Sniffed:
    """Read just the root and its first child element: refuses a DOCTYPE, returns namespace and names."""
    name = source_name(source)
    seen: list[etree._Element] = []
    with _open(source) as handle:
        try:
            for _event, element in etree.iterparse(handle, events=("start",), **_SAFE_OPTIONS):
                if not seen:
                    _refuse_doctype(name, element)
                seen.append(element)
                if len(seen) == 2:
                    break
        except etree.LxmlError as exc:
            raise _syntax_error(name, exc) from exc
        except (LookupError, UnicodeError) as exc:  # e.g. an unknown encoding in the XML declaration
            raise BankFileError(f"{name}: cannot decode the document ({exc})") from exc
    if not seen:
        raise BankFileError(f"{name}: no XML element found")
    root = seen[0]
    message = seen[1] if len(seen) > 1 else root  # some banks drop the Document wrapper
    return Sniffed(namespace_of(root.tag), local_name(root.tag), local_name(message.tag), message.sourceline or 1)


def stream(
    source: Source,
    tags: list[str],
    events: tuple[str, ...] = ("start", "end"),
    wrap: Callable[[IO[bytes]], Any] | None = None,
) -> Iterator[tuple[str, etree._Element]]:
    """(event, element) for elements with these local names, parsed safely; errors become BankFileError.

    The caller is expected to clear what it has read (see `release`) so memory stays bounded. `wrap`, if
    given, makes of the open file what the parser reads (anything with `read`).
    """
    name = source_name(source)
    with _open(source) as handle:
        yield from stream_handle(name, wrap(handle) if wrap is not None else handle, tags, events)


def stream_handle(
    name: str, handle: IO[bytes], tags: list[str], events: tuple[str, ...]
) -> Iterator[tuple[str, etree._Element]]:
    """`stream` of an open binary file (anything with `read`), `name` used in messages."""
    # `{*}Ntry` matches Ntry in any namespace or none; the filtering is done inside lxml, not in Python.
    # Whitespace-only text between elements (indentation) is not kept: nothing reads it (only leaf texts
    # and attributes are read), and it is half the nodes of an indented file.
    parser = etree.iterparse(
        handle, events=events, tag=[f"{{*}}{t}" for t in tags], remove_blank_text=True, **_SAFE_OPTIONS
    )
    first = True
    while True:
        try:
            event, element = next(parser)
        except StopIteration:
            return
        except etree.LxmlError as exc:
            raise _syntax_error(name, exc) from exc
        except (LookupError, UnicodeError) as exc:
            raise BankFileError(f"{name}: cannot decode the document ({exc})") from exc
        if first:
            _refuse_doctype(name, element)  # sniff() did this already; a second guard costs nothing
            first = False
        yield event, element


def release(element: etree._Element) -> None:
    """Free an element already read: its content, and all siblings before it (the usual iterparse idiom)."""
    element.clear(keep_tail=True)
    parent = element.getparent()
    if parent is None:
        return
    before = parent.index(element)
    if before:
        del parent[:before]  # one call, however many entries were kept before it


class View:
    """The descendants of one element by local-name path (`AmtDtls/TxAmt/Amt`), built in a single walk.

    Paths are relative to the element; subtrees whose local name is in `stop` are listed but not entered
    (an entry's TxDtls are read one by one with their own View). The first non-blank text at each path
    is kept as the walk passes, so a lookup is one dict access: a million entries make this the hot path.
    """

    __slots__ = ("_first", "paths")

    def __init__(self, element: etree._Element, stop: frozenset[str] = frozenset()) -> None:
        self.paths: dict[str, list[etree._Element]] = {}
        self._first: dict[str, str] = {}
        _index(element, "", stop, self.paths, self._first)

    def first(self, path: str) -> etree._Element | None:
        """The first element at `path`, or None."""
        found = self.paths.get(path)
        return found[0] if found else None

    def all(self, path: str) -> list[etree._Element]:
        """Every element at `path`, in document order."""
        return self.paths.get(path, [])

    def text(self, *paths: str) -> str | None:
        """The stripped text of the first of `paths` that has some, or None."""
        get = self._first.get
        for path in paths:
            text = get(path)
            if text is not None:
                return text
        return None

    def texts(self, path: str) -> list[str]:
        """The stripped, non-empty texts of every element at `path`."""
        return [t for t in ((e.text or "").strip() for e in self.paths.get(path, ())) if t]


_LOCAL_NAMES: dict[str, str] = {}  # "{urn:...}Amt" -> "Amt": a few dozen tags, met millions of times


def _index(
    element: etree._Element,
    prefix: str,
    stop: frozenset[str],
    paths: dict[str, list[etree._Element]],
    first: dict[str, str],
) -> None:
    local_names = _LOCAL_NAMES
    for child in element:
        tag = child.tag
        local = local_names.get(tag)
        if local is None:
            if tag.__class__ is not str:
                continue  # comments and processing instructions
            local = tag[tag.find("}") + 1 :]
            if len(local_names) < 10_000:  # bounded: a hostile file may invent any number of tags
                local_names[tag] = local
        path = prefix + local
        found = paths.get(path)
        if found is None:
            paths[path] = [child]
        else:
            found.append(child)
        if len(child):
            if local not in stop:
                _index(child, path + "/", stop, paths, first)
        elif path not in first:
            text = child.text  # ISO 20022 has no mixed content: only leaves carry text
            if text:
                text = text.strip()
                if text:
                    first[path] = text


# ---------------------------------------------------------------------------------------------------------
# Views of elements whose structure was seen before
# ---------------------------------------------------------------------------------------------------------
#
# Walking an element's descendants in Python costs a proxy object, a tag string and a few dict operations per
# descendant: for a transaction of 70 elements, a third of the time a large file takes. Most files repeat
# a handful of structures (which elements, in which order) with different texts. `ShapeCache` serialises an
# element (lxml does that in C), replaces its texts by placeholders to get its structure, and compiles the
# structure once into a regular expression whose groups are the element texts; the next element of the same
# structure is read by one match. A `FlatView` of the match answers exactly what a `View` of the element
# would. Anything out of the ordinary (a comment, an escaped character, a structure too large or a cache
# full) is left to `View`.
#
# Why a match is exact: the serialiser escapes `<` and `&` in texts and `"`, `<` and `&` in attribute
# values, so a pattern of literal tags, texts `[^<]*` and attribute values `[^"]*` can only match at the
# real tag boundaries; a full match means the element has exactly the pattern's structure.

_SKELETON_TEXT = re.compile(r">[^<]+<")
_SKELETON_ATTRIBUTE = re.compile(r'="[^"]*"')
_SKELETON_TAG = re.compile(r'<(/?)([^\s/<>="!?]+)((?: [^\s/<>="]+="")*)(/?)>')
_TEXT_GROUP = "([^<]*)"
_MAX_SHAPES = 128  # structures compiled per file: a hostile file may invent any number of them
_MAX_SKELETON = 8_000  # characters of structure: beyond, compiling costs more than it saves


class Part:
    """The view of one element of a structure: by path, the positions (child indices from the serialised
    element) of the descendants, the groups holding the texts of the leaves, and of every element."""

    __slots__ = ("leaves", "positions", "texts")

    def __init__(self) -> None:
        self.positions: dict[str, list[tuple[int, ...]]] = {}
        self.leaves: dict[str, list[int]] = {}
        self.texts: dict[str, list[int]] = {}


class Shape:
    """A compiled structure: its pattern, the view of the element and those of the elements at `split`
    (their positions and parts: by path, the element positions and the groups of their texts)."""

    __slots__ = ("_pieces", "_starts", "parts", "pattern")

    def __init__(
        self,
        pattern: re.Pattern[str],
        parts: list[tuple[tuple[int, ...], Part]],
        pieces: list[str],
        starts: dict[tuple[int, ...], int],
    ) -> None:
        self.pattern = pattern
        self.parts = parts
        self._pieces = pieces  # the pattern, piece by piece
        self._starts = starts  # element position -> the piece of its start tag

    def capturing(self, position: tuple[int, ...], attribute: str) -> tuple[re.Pattern[str], int] | None:
        """The pattern for source text (not serialised by lxml): attribute values may not hold `<`, a tab
        or a newline (which the serialiser would have escaped or the parser normalised), and the value of
        `attribute` of the element at `position` is captured too, as the group at the index returned (the
        text groups keep their order around it). None when that element has no such attribute."""
        at = self._starts.get(position)
        wanted = f" {re.escape(attribute)}="
        if at is None or f'{wanted}"[^"]*"' not in self._pieces[at]:
            return None
        plain = [piece.replace('="[^"]*"', '="[^"<\t\n]*"') for piece in self._pieces]
        plain[at] = plain[at].replace(f'{wanted}"[^"<\t\n]*"', f'{wanted}"([^"<\t\n]*)"', 1)
        before = sum(piece == _TEXT_GROUP for piece in self._pieces[:at])
        return re.compile("".join(plain)), before


class FlatView:
    """What `View` answers, for an element read through a `ShapeCache`: texts come from the match, elements
    (`first`, `all`) are the real ones, found by position."""

    __slots__ = ("_groups", "_part", "_root", "paths")

    def __init__(self, root: etree._Element, part: Part, groups: tuple[str, ...]) -> None:
        self._root = root
        self._part = part
        self._groups = groups
        self.paths = part.positions

    def _element(self, position: tuple[int, ...]) -> etree._Element:
        element = self._root
        for index in position:
            element = element[index]
        return element

    def first(self, path: str) -> etree._Element | None:
        found = self._part.positions.get(path)
        return self._element(found[0]) if found else None

    def all(self, path: str) -> list[etree._Element]:
        return [self._element(position) for position in self._part.positions.get(path, ())]

    def text(self, *paths: str) -> str | None:
        groups = self._groups
        leaves = self._part.leaves
        for path in paths:
            for group in leaves.get(path, ()):
                text = groups[group]
                if text:
                    text = text.strip()
                    if text:
                        return text
        return None

    def texts(self, path: str) -> list[str]:
        groups = self._groups
        return [t for t in (groups[g].strip() for g in self._part.texts.get(path, ())) if t]


class ShapeCache:
    """Views of elements by their structure, for one file: `views(element)` is the element's FlatView and
    those of its descendants at `split` (with their positions), or None when `View` must read it.

    Paths follow `View`: relative to the element, not entering subtrees whose local name is in `stop`
    (the split elements' own views enter everything)."""

    def __init__(self, stop: frozenset[str], split: str) -> None:
        self._stop = stop
        self._split = split
        self._shapes: dict[str, Shape | None] = {}
        self._last: Shape | None = None
        self.head: str | None = None  # the start tag the serialiser gave the last element matched

    def known(self, text: str) -> Shape | None:
        """The structure already compiled that `text` (an element as text) would have, if any; whether it
        matches is for the caller to check. Compiles nothing."""
        return self._shapes.get(_SKELETON_ATTRIBUTE.sub('=""', _SKELETON_TEXT.sub("><", text)))

    def views(self, element: etree._Element) -> tuple[FlatView, list[tuple[tuple[int, ...], FlatView]]] | None:
        found = self.match(element)
        return None if found is None else flat_views(element, *found)

    def match(self, element: etree._Element) -> tuple[Shape, tuple[str, ...]] | None:
        """The element's structure and its texts (the raw text of every non-empty element, in document
        order), or None when `View` must read it."""
        serialised = etree.tostring(element, encoding="unicode", with_tail=False)
        if "&" in serialised or "<!" in serialised or "<?" in serialised:
            return None  # escaped characters, comments, CDATA, processing instructions: View reads them
        shape = self._last
        match = shape.pattern.fullmatch(serialised) if shape is not None else None
        if match is None:
            skeleton = _SKELETON_ATTRIBUTE.sub('=""', _SKELETON_TEXT.sub("><", serialised))
            if skeleton in self._shapes:
                shape = self._shapes[skeleton]
            elif len(self._shapes) < _MAX_SHAPES:
                shape = self._shapes[skeleton] = _compile(skeleton, self._stop, self._split)
            else:
                return None
            match = shape.pattern.fullmatch(serialised) if shape is not None else None
            if match is None:
                return None
            self._last = shape
            self.head = serialised[: serialised.find(">") + 1]
        return shape, match.groups()


def flat_views(
    element: etree._Element, shape: Shape, groups: tuple[str, ...]
) -> tuple[FlatView, list[tuple[tuple[int, ...], FlatView]]]:
    """The views of an element matched by `ShapeCache.match`: its own, and those of the elements at `split`."""
    parts = shape.parts
    return FlatView(element, parts[0][1], groups), [
        (position, FlatView(element, part, groups)) for position, part in parts[1:]
    ]


def _compile(skeleton: str, stop: frozenset[str], split: str) -> Shape | None:
    """The shape of a skeleton (serialised element, texts removed, attribute values emptied), or None when
    it is not a plain tree of elements (or too large)."""
    if len(skeleton) > _MAX_SKELETON:
        return None
    pattern: list[str] = []
    starts: dict[tuple[int, ...], int] = {}
    # Per element in document order: local name, position, parent index, text group (None if empty), children.
    names: list[str] = []
    positions: list[tuple[int, ...]] = []
    groups: list[int | None] = []
    children: list[list[int]] = []
    open_stack: list[int] = []
    group_count = 0
    at = 0
    for match in _SKELETON_TAG.finditer(skeleton):
        if match.start() != at:
            return None
        at = match.end()
        closing, name, _attributes, empty = match.groups()
        if closing:
            if empty or not open_stack or names[open_stack[-1]] != name:
                return None
            open_stack.pop()
            pattern.append(re.escape(match.group(0)))
        else:
            if open_stack:
                parent = open_stack[-1]
                position = (*positions[parent], len(children[parent]))
                children[parent].append(len(names))
            elif names:
                return None  # a second root
            else:
                position = ()
            starts[position] = len(pattern)
            pattern.append(re.escape(match.group(0)).replace('=""', '="[^"]*"'))
            names.append(name)
            positions.append(position)
            children.append([])
            if empty:
                groups.append(None)
            else:
                group_count += 1
                groups.append(group_count)
                pattern.append(_TEXT_GROUP)
                open_stack.append(len(names) - 1)
                continue
        if open_stack:
            pattern.append("[^<]*")  # a tail: never read
    if at != len(skeleton) or open_stack or not names:
        return None
    local = [name.rpartition(":")[2] for name in names]

    def part_of(root: int, stop_here: frozenset[str]) -> Part:
        part = Part()
        pending = [(child, "") for child in reversed(children[root])]
        while pending:
            index, prefix = pending.pop()
            path = prefix + local[index]
            part.positions.setdefault(path, []).append(positions[index])
            group = groups[index]
            if group is not None:
                part.texts.setdefault(path, []).append(group - 1)
            if children[index]:
                if local[index] not in stop_here:
                    pending.extend((child, path + "/") for child in reversed(children[index]))
            elif group is not None:
                part.leaves.setdefault(path, []).append(group - 1)
        return part

    root_part = part_of(0, stop)
    parts = [((), root_part)]
    for position in root_part.positions.get(split, ()):
        index = positions.index(position)
        parts.append((position, part_of(index, frozenset())))
    return Shape(re.compile("".join(pattern)), parts, pattern, starts)
