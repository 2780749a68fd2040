"""Conformance against the shared corpus of real bank files ($PAYOUTS_CORPUS, default ../shared/corpus).

The expected verdict of each file is the "XSD check" column of the corpus's SOURCES.md: `valid` files must
validate, `INVALID` ones must give errors (as many as SOURCES.md counts, where it counts them), and `n/a`
ones (Swiss SIX namespaces, no namespace) must be explained as an unsupported namespace; never an exception.
pain.001 and pain.008 are checked against the XSDs shipped in sepa/xsd/ alone. For pain.002 and camt the
corpus's own xsd/ folder is searched as well; a message type with no XSD anywhere is skipped, by name.
Without the corpus the tests skip, except on CI (CI=true), where a missing corpus is a failure.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from sepa.xsd import supported_message_types, validate_document

CORPUS = Path(os.environ.get("PAYOUTS_CORPUS", Path(__file__).resolve().parents[2].parent / "shared" / "corpus"))
OUTGOING = ("pain001", "pain008")
INCOMING = ("pain002", "camt052", "camt053", "camt054")


def _verdicts() -> dict[str, str]:
    """`folder/file.xml` -> the XSD check column of SOURCES.md (`valid ...`, `INVALID (...)`, `n/a (...)`)."""
    sources = CORPUS / "SOURCES.md"
    if not sources.is_file():
        return {}
    verdicts: dict[str, str] = {}
    folder = ""
    for line in sources.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"###\s+(\S+)", line)
        if heading:
            folder = heading.group(1)
        row = re.match(r"\|\s*`([^`]+\.xml)`", line)
        if row and folder:
            verdicts[f"{folder}/{row.group(1)}"] = line.rstrip().rstrip("|").rsplit("|", 1)[-1].strip()
    return verdicts


VERDICTS = _verdicts()


def _files(folders: tuple[str, ...]) -> list[str]:
    return sorted(f"{p.parent.name}/{p.name}" for folder in folders for p in (CORPUS / folder).glob("*.xml"))


def test_the_corpus_is_there() -> None:
    if not (CORPUS / "SOURCES.md").is_file():
        reason = f"no bank file corpus at {CORPUS} (set $PAYOUTS_CORPUS to its folder)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + ": on CI the corpus is required")
        pytest.skip(reason)
    assert _files(OUTGOING) and _files(INCOMING), f"{CORPUS} has no pain or camt files"


@pytest.mark.parametrize("name", _files(OUTGOING + INCOMING))
def test_every_corpus_file_has_a_verdict(name: str) -> None:
    assert name in VERDICTS, f"{name} is not listed in SOURCES.md, so its expected XSD verdict is unknown"


def _check(name: str, extra_xsd_dirs: list[Path]) -> None:
    verdict = VERDICTS.get(name)
    if verdict is None:
        pytest.fail(f"{name} has no verdict in SOURCES.md")
    data = (CORPUS / name).read_bytes()
    result = validate_document(data, extra_xsd_dirs=extra_xsd_dirs)  # never raises: an exception fails the test
    if verdict.startswith("n/a"):
        assert result.message_type is None and len(result.errors) == 1, result
        assert "namespace" in result.errors[0].message
        return
    assert result.message_type is not None, result
    if result.message_type not in supported_message_types(extra_xsd_dirs):
        pytest.skip(f"no XSD for {result.message_type} in sepa/xsd/ or the corpus's xsd/ folder")
    if verdict.startswith("valid"):
        assert result.ok, [str(e) for e in result.errors]
        expected_type = re.search(r"\((\w{4}\.\d{3}\.\d{3}\.\d{2})\)", verdict)
        assert expected_type is None or expected_type.group(1) == result.message_type
    elif verdict.startswith("INVALID"):
        assert result.errors, f"{name} is INVALID per SOURCES.md but validated"
        assert all(e.line >= 1 and e.element and e.message for e in result.errors)
        counted = re.search(r"\((\d+) error", verdict)
        assert counted is None or len(result.errors) == int(counted.group(1)), [str(e) for e in result.errors]
    else:
        pytest.fail(f"{name}: unrecognised verdict {verdict!r} in SOURCES.md")


@pytest.mark.parametrize("name", _files(OUTGOING))
def test_outgoing_corpus_files_against_the_shipped_xsds(name: str) -> None:
    _check(name, extra_xsd_dirs=[])


@pytest.mark.parametrize("name", _files(INCOMING))
def test_incoming_corpus_files(name: str) -> None:
    _check(name, extra_xsd_dirs=[CORPUS / "xsd"])
