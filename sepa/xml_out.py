"""Streaming ISO 20022 documents with `lxml.etree.xmlfile`: the toolkit of every writer in this package.

Our payment files (pain.001, pain.008) and the sandbox bank's answers (pain.002, camt.054, camt.053) can hold
100,000 transactions or more; building the whole tree first would cost memory and time. Instead containers
(Document, the message element, PmtInf, Stmt ...) are opened as streamed elements with `Out.open`, and what
goes inside them is written as small subtrees with `Out.put`, one element per line with a two-space indent,
so that a validation error's line number points at one element.

Elements that repeat per row (a transaction, an entry) are built once per shape as an indented `Template`
whose texts are refilled for each row: per row only a few `.text` assignments and one serialisation happen.
Templates and subtrees are built without a namespace and written inside the root element, which declares the
message's namespace as the default one, so they are in the document's namespace without an `xmlns` repeated
on every transaction.

A document written to a path appears under that name only once it is complete: it is written to a `.part`
file beside it and renamed, so a writer that stops half way (bad input found late, a failed integrity check)
leaves no partial file behind.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from lxml import etree

from sepa.xsd import ISO_NAMESPACE_PREFIX

INDENT = "  "

Target = str | os.PathLike[str] | IO[bytes]
"""Where a document goes: a file name, or a binary stream that is written to and left open."""

_MARK = "@@"  # marks a refilled text while a template is cut into pieces: no text of a template has one
_NEWLINES = tuple("\n" + INDENT * level for level in range(16))  # built once: written before every element


def newline(level: int) -> str:
    """A line break and the indent of nesting level `level`."""
    return _NEWLINES[level] if level < len(_NEWLINES) else "\n" + INDENT * level


def element(tag: str, *children: etree._Element, text: str | None = None, **attrib: str) -> etree._Element:
    """A new element with `text`, attributes and `children`."""
    new = etree.Element(tag, attrib)
    new.text = text
    new.extend(children)
    return new


def sub_element(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    """A new last child of `parent` with `text` and attributes."""
    new = etree.SubElement(parent, tag, attrib)
    new.text = text
    return new


class Out:
    """An `xmlfile` writer that indents: containers are opened as streamed elements, everything inside them
    is written as small subtrees, one element per line. `level` is the nesting depth (the root is 0)."""

    def __init__(self, xf: Any, sink: IO[bytes]) -> None:
        self._xf = xf
        self._sink = sink

    @contextmanager
    def open(self, tag: str, level: int) -> Iterator[None]:
        """Stream the element `tag` at `level`: its children are written inside the `with` block."""
        self._xf.write(newline(level))
        with self._xf.element(tag):
            yield
            self._xf.write(newline(level))

    def put(self, subtree: etree._Element, level: int, *, indented: bool = False) -> None:
        """Write a subtree at `level`; `indented` when its whitespace is already set (templates)."""
        if not indented:
            etree.indent(subtree, space=INDENT, level=level)
        self._xf.write(newline(level), subtree, with_tail=False)

    def put_serialised(self, data: bytes) -> None:
        """Write elements already serialised (and indented) as they are: what `xmlfile` holds is written out
        first, so the bytes land where the next element would have."""
        self._xf.flush()
        self._sink.write(data)


@contextmanager
def document(
    target: Target,
    message_type: str,
    message_element: str,
    *,
    namespaces: Mapping[str, str] | None = None,
    final_newline: bool = False,
) -> Iterator[Out]:
    """Stream a document to `target`: XML declaration, `Document` in the namespace of `message_type`
    (`pain.001.001.03`) with any further `namespaces` (prefix -> URI) declared on it, and the message element,
    inside which the caller writes at level 2. `final_newline` ends the file with a line break after
    `</Document>`, as lxml's pretty printer does."""
    namespace = ISO_NAMESPACE_PREFIX + message_type
    with _sink(target) as sink:
        with etree.xmlfile(sink, encoding="UTF-8") as xf:
            xf.write_declaration()
            with xf.element(f"{{{namespace}}}Document", nsmap={None: namespace, **(namespaces or {})}):
                out = Out(xf, sink)
                with out.open(message_element, 1):
                    yield out
                xf.write("\n")
        if final_newline:
            sink.write(b"\n")  # after the root element xmlfile takes no text, so straight to the stream


@contextmanager
def _sink(target: Target) -> Iterator[IO[bytes]]:
    """`target` itself if it is a stream; for a path, a `.part` file beside it that replaces the path when the
    block ends normally and is deleted when it raises."""
    if hasattr(target, "write"):
        yield target  # type: ignore[misc]
        return
    path = os.fspath(target)
    part = f"{path}.part"
    try:
        with open(part, "wb") as stream:
            yield stream
        os.replace(part, path)
    except BaseException:
        if os.path.exists(part):
            os.unlink(part)
        raise


def to_bytes(write: Callable[..., None], **kwargs: Any) -> bytes:
    """What `write(stream, **kwargs)` writes, as bytes: the `build_*` twin of a `write_*` function."""
    buffer = io.BytesIO()
    write(buffer, **kwargs)
    return buffer.getvalue()


@dataclass
class Template:
    """A prebuilt, indented subtree and the (element, key) pairs whose texts each row refills.

    A row is anything indexable by the keys: a dict by column name, or a tuple by position (faster to get
    from a frame when a writer handles many rows)."""

    root: etree._Element
    fills: list[tuple[etree._Element, Any]]

    def fill(self, row: Mapping[str, Any] | tuple[Any, ...]) -> etree._Element:
        """The subtree with the row's texts in it (the same object every time: write it before the next fill)."""
        for target, key in self.fills:
            target.text = row[key]
        return self.root

    def pieces(self) -> tuple[list[str], list[Any]]:
        """The subtree as lxml serialises it, cut around its refilled texts: `(texts, keys)` with one more text
        than keys, so that `texts[0] + row[keys[0]] + texts[1] + ...` is what `fill(row)` serialises to, for
        texts that serialise as they are (no `&`, `<`, `>`, carriage return or control character)."""
        for n, (target, _key) in enumerate(self.fills):
            target.text = f"{_MARK}{n}{_MARK}"
        serialised = etree.tostring(self.root, encoding="unicode", with_tail=False)
        cut = re.split(f"{_MARK}([0-9]+){_MARK}", serialised)
        texts, order = cut[0::2], [int(n) for n in cut[1::2]]
        if sorted(order) != list(range(len(self.fills))):
            raise RuntimeError("a template's marker was not serialised once for each text")  # never expected
        return texts, [self.fills[n][1] for n in order]
