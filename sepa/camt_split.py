"""Reading a large camt file with two processes: `sepa.camt`'s helper for files over `SPLIT_MIN_BYTES`.

libxml2 parses with the GIL held, and the Python reading each entry needs it too: a second core helps only
as another process. After the first entry, the file is split at an entry start tag found by its bytes
(`<Ntry>` first on its line, about the middle):
  - this process parses the file up to that offset followed by the end tags of the elements open around
    the first entry (its statement and the statement's ancestors);
  - another Python process parses the start tags of those elements (same names, same namespaces in
    scope) followed by the file from that offset, with the statement's header and the message id handed
    over, and sends back its rows and statements.
The two parts are taken together only if both parsed without any error, and this process's part ended
with that same statement closed by the end tags added and nothing after them: then the elements open at
the offset were exactly those (a comment, CDATA section or processing instruction hiding the bytes found
would have swallowed the end tags added), and the other process read what this one would have. The
other process gives up at any row problem, note or header problem (it counts lines from the offset, and
messages name lines): such a file, a file with any error, or anything unexpected is read again from the
start by one process, so every message is the one a single parse gives. Entries whose reference is their
number in the statement are numbered by the other process from a placeholder and renumbered here. The
other process parses with the same safe settings; nothing it reads is evaluated.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import threading
from typing import IO, Any

import polars as pl
from lxml import etree

from sepa.bank_lines import RowBuffer
from sepa.camt import _PLACEHOLDER, _TAGS, STATEMENT_TAGS, Statement, _Reading, _State, _Unsure
from sepa.camt_skim import is_utf8_document
from sepa.safe_xml import BankFileError, Source, local_name, release, stream_handle

SPLIT_MIN_BYTES = 64 * 1024**2  # smaller files are read faster than a process starts (~1 s)
_SPLIT_AT = 0.53  # where to look for an entry, as a share of the file: the other also sends its rows over
_SPLIT_WINDOW = 4 * 1024**2  # bytes searched for an entry start tag first on its line
_WORKER = "from sepa.camt_split import _split_worker; _split_worker()"


def may_split(source: Source) -> bool:
    if isinstance(source, bytes | bytearray | memoryview) or not sys.executable:
        return False
    try:
        return os.stat(source).st_size >= SPLIT_MIN_BYTES
    except OSError:
        return False


def _utf8(fd: int) -> bool:
    """Whether the file is an XML 1.0 document declared (or taken) as UTF-8, as the other process's part is:
    declared in another encoding, the second part could read differently."""
    return is_utf8_document(os.pread(fd, 512, 0))


def read_split(
    path: str, name: str, message_type: str, buffer: RowBuffer, notes: list[str]
) -> tuple[str | None, list[Statement]] | None:
    """Read the file with a second process when it can be split; None when it must be read again from the
    start by one process. Rows and notes go to `buffer` and `notes` only when the reading succeeded."""
    own_notes = list(notes)
    reading = _Reading(message_type, RowBuffer(), own_notes)
    split: _Split | None = None
    tried = closed = False
    try:
        with open(path, "rb") as raw:
            if not _utf8(raw.fileno()):
                return None
            handle = _Limited(raw)
            events = stream_handle(name, reading.skim(handle), _TAGS, ("end",))  # type: ignore[arg-type]
            try:
                for _event, element in events:
                    tag = element.tag
                    local = tag[tag.find("}") + 1 :]
                    if split is not None and element is split.parent:
                        # The split statement ends: by the end tags added, if nothing follows and nothing changed.
                        closed = reading.state is split.state
                        reading.read_kept()
                        for _more in events:
                            closed = False
                        break
                    may_release = reading.read(local, element)
                    if not tried and local == "Ntry":
                        tried = True
                        split = _Split.start(raw.fileno(), element, reading, handle)
                    if may_release:
                        release(element)
            finally:
                events.close()
        if split is None:
            reading.finish()  # read by this process alone, from start to end: as `read_camt` does
            buffer.append_frames(reading.buffer.frames())
            notes[:] = own_notes
            return reading.message_id, reading.statements
        result = split.result() if closed else None
    except BankFileError:
        if split is None:
            raise  # the whole file was parsed as it is: the error is the file's
        return None  # perhaps an error of the part only: a single parse says which
    finally:
        if split is not None:
            split.stop()
    if result is None:
        return None
    statements: list[Statement] = result["statements"]
    state = split.state
    buffer.append_frames(reading.buffer.frames())
    buffer.append_frames(_renumbered(chunk, state.ref_base, state.entries) for chunk in result["chunks"])
    notes[:] = own_notes
    state.entries += statements[0].entries
    reading.statements.append(state.finish())
    reading.statements.extend(statements[1:])
    return reading.message_id, reading.statements


class _Limited:
    """A binary file read up to `limit` and then `tail`, once `limit` is set (before it has been read)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._at = 0
        self._limit: int | None = None
        self._tail = b""

    def limit(self, offset: int, tail: bytes) -> bool:
        if self._at > offset:
            return False
        self._limit, self._tail = offset, tail
        return True

    def read(self, size: int = -1) -> bytes:
        if self._limit is None:
            data = self._raw.read(size)
        elif self._at < self._limit:
            data = self._raw.read(
                self._limit - self._at if size is None or size < 0 else min(size, self._limit - self._at)
            )
        else:
            data, self._tail = (self._tail, b"") if size is None or size < 0 else (self._tail[:size], self._tail[size:])
            return data
        self._at += len(data)
        return data


class _Positional:
    """A file descriptor read from `offset` on without moving its (shared) position."""

    def __init__(self, fd: int, offset: int) -> None:
        self._fd = fd
        self._at = offset

    def read(self, size: int = -1) -> bytes:
        data = os.pread(self._fd, size if size is not None and size >= 0 else 1 << 30, self._at)
        self._at += len(data)
        return data


class _Joined:
    """A binary stream: `head`, then the rest of `handle`."""

    def __init__(self, head: bytes, handle: IO[bytes] | _Positional) -> None:
        self._head = head
        self._handle = handle

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                data, self._head = self._head + self._handle.read(), b""
            else:
                data, self._head = self._head[:size], self._head[size:]
            return data
        return self._handle.read(size)


def _xml_attribute(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
        .replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")
    )  # fmt: skip


def _qualified(element: etree._Element) -> str:
    name = local_name(element.tag)
    return f"{element.prefix}:{name}" if element.prefix else name


def _tags_around(parent: etree._Element) -> tuple[str, str]:
    """Start tags of `parent` and its ancestors (outermost first, each declaring the namespaces in scope), and
    their end tags (innermost first)."""
    starts, ends = [], []
    element: etree._Element | None = parent
    while element is not None:
        qualified = _qualified(element)
        declarations = [
            f' xmlns{":" + prefix if prefix else ""}="{_xml_attribute(uri)}"' for prefix, uri in element.nsmap.items()
        ]
        if None not in element.nsmap:
            declarations.append(' xmlns=""')
        starts.append(f"<{qualified}{''.join(declarations)}>")
        ends.append(f"</{qualified}>")
        element = element.getparent()
    return "".join(starts[::-1]), "".join(ends)


def _find_split(fd: int, qualified: str) -> int | None:
    """The offset of an entry start tag first on its line, past `_SPLIT_AT` of the file, or None."""
    pattern = re.compile(rb"\n[ \t\r]*(<" + re.escape(qualified.encode()) + rb")[ \t\r\n/>]")
    start = int(os.fstat(fd).st_size * _SPLIT_AT)
    window = os.pread(fd, _SPLIT_WINDOW, start)
    found = pattern.search(window)
    return start + found.start(1) if found else None


class _Split:
    """The other process, reading the file from an offset; `parent` and `state`: the statement split in two."""

    def __init__(self, process: subprocess.Popen[bytes], parent: etree._Element, state: _State) -> None:
        self.process = process
        self.parent = parent
        self.state = state
        self.received: dict[str, Any] | None = None
        self.receiver = threading.Thread(target=self._receive, name="camt-split-receiver", daemon=True)

    @classmethod
    def start(cls, fd: int, entry: etree._Element, reading: _Reading, handle: _Limited) -> _Split | None:
        """After the first entry: start the other process and limit this one's part; None if not possible."""
        state, parent = reading.state, entry.getparent()
        if state is None or parent is None or state.node is not parent or reading.message_id is None:
            return None
        if local_name(parent.tag) not in STATEMENT_TAGS:
            return None
        try:
            offset = _find_split(fd, _qualified(entry))
        except OSError:
            return None
        if offset is None:
            return None
        starts, ends = _tags_around(parent)
        task = {
            "fd": fd, "offset": offset, "message_type": reading.message_type, "message_id": reading.message_id,
            "state": {name: getattr(state, name) for name in _HANDED_OVER}, "statements_before": state.index - 1,
            "prologue": ('<?xml version="1.0" encoding="UTF-8"?>' + starts).encode(),
            "depth": len(list(parent.iterancestors())) + 1,
        }  # fmt: skip
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package, os.environ.get("PYTHONPATH")]))}
        try:
            process = subprocess.Popen(
                [sys.executable, "-P", "-c", _WORKER],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, pass_fds=(fd,),
            )  # fmt: skip
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
        split = cls(process, parent, state)
        try:
            assert process.stdin is not None
            pickle.dump(task, process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            process.stdin.close()
        except (OSError, ValueError):
            split.stop()
            return None
        if not handle.limit(offset, ends.encode()):
            split.stop()
            return None
        split.receiver.start()
        return split

    def _receive(self) -> None:
        """In a thread from the start: the other process's rows as it sends them (so it does not hold them),
        then its statements; anything else, or an early end, leaves `self.received` None."""
        chunks: list[pl.DataFrame] = []
        try:
            assert self.process.stdout is not None
            while True:
                kind, value = pickle.load(self.process.stdout)
                if kind == "rows" and isinstance(value, pl.DataFrame):
                    chunks.append(value)
                elif kind == "done" and isinstance(value, list) and value:
                    self.received = {"chunks": chunks, "statements": value}
                    return
                else:
                    return
        except Exception:  # EOF, a broken pipe, a kill: the file is read again by one process
            return

    def result(self) -> dict[str, Any] | None:
        """What the other process read, or None if it could not read its part."""
        self.receiver.join()
        if self.process.wait() != 0:
            return None
        return self.received

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.receiver.is_alive():
            self.receiver.join()  # the pipe is at its end once the process is gone
        if self.process.stdout is not None:
            self.process.stdout.close()


_HANDED_OVER = ("element", "index", "id", "account_iban", "currency", "opening", "closing", "sign_missing")


def _renumbered(chunk: pl.DataFrame, ref_base: str, before: int) -> pl.DataFrame:
    """Entry references numbered from the placeholder by the other process, numbered in the statement."""
    ref = pl.col("entry_ref")
    number = ref.str.slice(len(_PLACEHOLDER) + 1).cast(pl.Int64, strict=False) + before
    renumbered = pl.format("{}#{}", pl.lit(ref_base), number)
    return chunk.with_columns(
        pl.when(ref.str.starts_with(_PLACEHOLDER + "#")).then(renumbered).otherwise(ref).alias("entry_ref")
    )


def _send(kind: str, *values: object) -> None:
    """To the reading process, one pickle per value (each unpickled and let go of on its own)."""
    for value in values:
        pickle.dump((kind, value), sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)


def _split_worker() -> None:
    """The other process: a task from stdin, the file read from its offset, the result pickled to stdout."""
    try:
        task = pickle.load(sys.stdin.buffer)
        buffer = RowBuffer()
        reading = _Reading(task["message_type"], buffer, [], task["statements_before"], strict=True)
        reading.message_id = task["message_id"]
        state = _State(**task["state"], placeholder=True)
        # The reading process's own open file (the same file whatever happens to its name), read at offsets.
        joined = _Joined(task["prologue"], _Positional(task["fd"], task["offset"]))
        for _event, element in stream_handle("<part>", reading.skim(joined), _TAGS, ("end",)):  # type: ignore[arg-type]
            tag = element.tag
            local = tag[tag.find("}") + 1 :]
            if state.node is None:  # the first to end is the entry at the offset, in the statement
                parent = element.getparent()
                if local != "Ntry" or parent is None or len(list(parent.iterancestors())) + 1 != task["depth"]:
                    raise _Unsure
                state.node = parent
                reading.state = state
            if reading.read(local, element):
                release(element)
            if buffer.chunks:
                _send("rows", *buffer.frames())
        reading.finish()
        if not reading.statements or state.node is None:
            raise _Unsure
        _send("rows", *buffer.frames())
        _send("done", reading.statements)
        sys.stdout.buffer.flush()
    except BaseException:  # any trouble: the file is read again by one process
        os._exit(1)
