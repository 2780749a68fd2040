"""Validation of ISO 20022 files against the official XSDs, with lxml.

The schema is chosen by the document's namespace (`urn:iso:std:iso:20022:tech:xsd:pain.001.001.03` ->
`pain.001.001.03`). The XSDs ship in `sepa/xsd/<message type>.xsd`; a caller may name further folders.
Documents are parsed safely: no DTD, no entities, no network, libxml2's size limits. Every problem, a
malformed document included, comes back as an `XsdError` with line, element, offending value and a short
message; `validate_document` never raises on bad input.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from lxml import etree

ISO_NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
_ISO_NAMESPACE_RE = re.compile(re.escape(ISO_NAMESPACE_PREFIX) + r"([a-z]{4}\.\d{3}\.\d{3}\.\d{2})")
_MAX_VALUE_LEN = 200  # an over-long Ustrd is quoted, not a whole megabyte of it
MAX_ERRORS = 1000  # a file broken in every transaction is reported by its first errors, plus a count


@dataclass(frozen=True)
class XsdError:
    """One problem in a document: where (line, element path), what (message) and the offending value."""

    line: int
    element: str
    value: str | None
    message: str

    def __str__(self) -> str:
        quoted = "" if self.value is None else f" (value {self.value!r})"
        return f"line {self.line}: {self.element}: {self.message}{quoted}"


@dataclass(frozen=True)
class Validation:
    """The outcome of validating one document: its message type (None if not recognised) and its errors."""

    message_type: str | None
    errors: list[XsdError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if the document is valid against the XSD of its message type."""
        return not self.errors


def _safe_parser(*, remove_blank_text: bool = False) -> etree.XMLParser:
    # A parser per call: lxml parsers are not meant to be shared between threads.
    return etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False, remove_blank_text=remove_blank_text
    )


def _package_xsd_dir() -> Path:
    return Path(str(resources.files("sepa").joinpath("xsd")))


def _xsd_files(extra_dirs: tuple[Path, ...]) -> dict[str, Path]:
    """Message type -> XSD file; the package's own first, then extra folders (files named `*<type>.xsd`)."""
    found: dict[str, Path] = {}
    for folder in (_package_xsd_dir(), *extra_dirs):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.xsd")):
            match = re.search(r"([a-z]{4}\.\d{3}\.\d{3}\.\d{2})\.xsd$", path.name)
            if match and match.group(1) not in found:
                found[match.group(1)] = path
    return found


def supported_message_types(extra_xsd_dirs: Iterable[Path | str] = ()) -> list[str]:
    """The message types there is an XSD for, sorted (e.g. `['pain.001.001.03', ...]`)."""
    return sorted(_xsd_files(tuple(Path(d) for d in extra_xsd_dirs)))


class _Schema:
    """A compiled schema and a lock: an XMLSchema's error log belongs to the object, not to the call."""

    def __init__(self, schema: etree.XMLSchema) -> None:
        self.schema = schema
        self.lock = threading.Lock()


@lru_cache(maxsize=64)
def _compiled(path: Path, message_type: str) -> _Schema:
    """The schema in `path`, compiled once per process (compiling takes longer than validating a small file)."""
    tree = etree.parse(str(path), _safe_parser())
    target = tree.getroot().get("targetNamespace")
    if target != ISO_NAMESPACE_PREFIX + message_type:
        raise ValueError(f"{path} is not the XSD of {message_type} (its targetNamespace is {target!r})")
    return _Schema(etree.XMLSchema(tree))


def message_type_of(data: bytes) -> str | None:
    """The ISO 20022 message type named by the root element's namespace (`camt.053.001.02`), or None when the
    document is not XML or its namespace is not an ISO 20022 one. Reads only up to the root element."""
    try:
        for _, element in etree.iterparse(
            io.BytesIO(data),
            events=("start",),
            resolve_entities=False,
            no_network=True,
            huge_tree=False,
            load_dtd=False,
        ):
            return _type_of_namespace(etree.QName(element).namespace)
    except etree.XMLSyntaxError:
        return None
    return None


def _type_of_namespace(namespace: str | None) -> str | None:
    match = _ISO_NAMESPACE_RE.fullmatch(namespace or "")
    return match.group(1) if match else None


def validate_document(
    data: bytes, *, extra_xsd_dirs: Iterable[Path | str] = (), indented_by_us: bool = False
) -> Validation:
    """Validate an ISO 20022 document against the XSD of the message type its namespace names.

    Never raises on bad input: a malformed document, a DOCTYPE (refused, entities are never resolved), an
    unknown namespace or a message type without an XSD each give one explanatory error. `extra_xsd_dirs` adds
    folders of XSDs named `*<message type>.xsd`, searched after the package's own.

    `indented_by_us`: the document is one of our own writers', whose only blank text between elements is
    indentation and which holds no comments; it is parsed without that indentation (libxml2's
    remove_blank_text), which takes a third less time and gives the same verdict. Not for documents from
    elsewhere: libxml2 also drops a blank text that only a comment follows (`<Nm> <!-- --></Nm>`).
    """
    parser = _safe_parser(remove_blank_text=indented_by_us)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        return Validation(message_type_of(data), _syntax_errors(exc, parser))
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        # Bank files never need a DTD; one with entities is how XXE and entity-expansion attacks arrive.
        message = "document has a DOCTYPE declaration; DTDs and entities are refused (nothing was resolved)"
        return Validation(None, [XsdError(1, "(document)", None, message)])

    namespace = etree.QName(root).namespace
    message_type = _type_of_namespace(namespace)
    xsds = _xsd_files(tuple(Path(d) for d in extra_xsd_dirs))
    if message_type is None:
        where = f"namespace {namespace!r}" if namespace else "no namespace"
        message = f"root element <{etree.QName(root).localname}> is in {where}; supported: {', '.join(sorted(xsds))}"
        return Validation(None, [XsdError(root.sourceline or 1, _path(root), namespace, message)])
    if message_type not in xsds:
        message = f"no XSD available for {message_type}; supported: {', '.join(sorted(xsds))}"
        return Validation(message_type, [XsdError(root.sourceline or 1, _path(root), namespace, message)])

    compiled = _compiled(xsds[message_type], message_type)
    with compiled.lock:
        if compiled.schema.validate(tree):
            return Validation(message_type, [])
        entries = list(compiled.schema.error_log)
    errors = [_schema_error(tree, entry) for entry in entries[:MAX_ERRORS]]
    if len(entries) > MAX_ERRORS:
        rest = len(entries) - MAX_ERRORS
        errors.append(XsdError(entries[MAX_ERRORS].line, "(document)", None, f"{rest} more errors not listed"))
    return Validation(message_type, errors)


def _syntax_errors(exc: etree.XMLSyntaxError, parser: etree.XMLParser) -> list[XsdError]:
    # The parser's own log: the exception's copy of the thread's log may hold earlier, unrelated errors.
    log = parser.error_log
    entries = [e for e in log if e.level >= etree.ErrorLevels.ERROR] or list(log)
    if not entries:
        return [XsdError(exc.lineno or 1, "(document)", None, f"not well-formed XML: {exc.msg}")]
    return [
        XsdError(e.line or 1, "(document)", None, f"not well-formed XML: {e.message}") for e in entries[:MAX_ERRORS]
    ]


def _path(element: etree._Element) -> str:
    """`/Document/CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf[2]/CdtrAcct/Id/IBAN`: local names, with a position where
    an element has siblings of the same name."""
    parts: list[str] = []
    node: etree._Element | None = element
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = [s for s in parent if isinstance(s.tag, str) and etree.QName(s).localname == name]
            if len(same) > 1:
                name = f"{name}[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))


_PREFIX_RE = re.compile(r"^Element '(?P<tag>[^']*)'(?:, attribute '(?P<attr>[^']*)')?: ")
_QUOTED_VALUE_RE = re.compile(r"The value '(?P<value>.*?)' (?:is not|has)|^'(?P<atomic>.*?)' is not a valid value")
_REWRITES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"The value '.*?' is not accepted by the pattern '(.*)'\.$", re.S), r"does not match the pattern \1"),
    (
        re.compile(r"The value has a length of '(\d+)'; this exceeds the allowed maximum length of '(\d+)'\."),
        r"is \1 characters long, at most \2 allowed",
    ),
    (
        re.compile(r"The value has a length of '(\d+)'; this underruns the allowed minimum length of '(\d+)'\."),
        r"is \1 characters long, at least \2 required",
    ),
    (re.compile(r"The value '.*?' is not an element of the set \{(.*)\}\.$", re.S), r"is not one of \1"),
    (
        re.compile(r"^'.*?' is not a valid value of the (?:atomic|union|list) type '(.*)'\.$", re.S),
        r"is not a valid \1",
    ),
    (
        re.compile(r"This element is not expected\. Expected is (?:one of )?\( ?(.*?) ?\)\.$"),
        r"not expected here; expected \1",
    ),
    (re.compile(r"This element is not expected\.$"), "not expected here"),
    (
        re.compile(r"Missing child element\(s\)\. Expected is (?:one of )?\( ?(.*?) ?\)\.$"),
        r"missing child element: \1",
    ),
]


def _schema_error(tree: etree._ElementTree, entry: etree._LogEntry) -> XsdError:
    """An lxml schema error turned into line, element path, offending value and a short message."""
    message = entry.message
    prefix = _PREFIX_RE.match(message)
    attribute = prefix.group("attr") if prefix else None
    body = message[prefix.end() :] if prefix else message
    body = re.sub(r"^\[facet '[^']*'\] ", "", body)

    element: etree._Element | None = None
    if entry.path:
        found = tree.xpath(entry.path)
        if isinstance(found, list) and found and isinstance(found[0], etree._Element):
            element = found[0]
    if element is not None:
        where = _path(element)
    elif prefix:
        where = etree.QName(prefix.group("tag")).localname
    else:
        where = "(document)"
    if attribute:
        where = f"{where}/@{attribute}"

    quoted = _QUOTED_VALUE_RE.search(body)
    value: str | None
    if quoted:
        value = quoted.group("value") if quoted.group("value") is not None else quoted.group("atomic")
    elif attribute and element is not None:
        value = element.get(attribute)
    elif element is not None and len(element) == 0 and "length" in body:
        value = element.text or ""  # the length facets do not quote the value: take it from the document
    else:
        value = None
    if value is not None and len(value) > _MAX_VALUE_LEN:
        value = value[:_MAX_VALUE_LEN] + "..."

    short = body
    for pattern, replacement in _REWRITES:
        if pattern.search(short):
            short = pattern.sub(replacement, short)
            break
    short = re.sub(r"\{[A-Za-z][^}]*\}", "", short)  # namespaces in expected-element lists, not {2,2} quantifiers
    return XsdError(entry.line or 1, where, value, short)
