"""A camt.054 of 200,000 entries is read in bounded memory: far less than its tree would take.

The file is written incrementally with lxml's xmlfile, then read while a thread samples the process's
resident memory. The tree size is measured in a fresh process that parses a 10,000-entry sample whole.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from lxml import etree

from sepa.bank_files import read_bank_file

ENTRIES = 200_000
SAMPLE_ENTRIES = 10_000
NS = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
OWN_IBAN = "DE89370400440532013000"


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def write_camt054(path: Path, entries: int) -> int:
    """Write a camt.054 with `entries` credit entries (no TxDtls: one row each, the shape of a bank that books
    every incoming transfer on its own), one element at a time; returns their total in cents."""
    entry = etree.Element(_q("Ntry"))
    amount = etree.SubElement(entry, _q("Amt"), Ccy="EUR")
    etree.SubElement(entry, _q("CdtDbtInd")).text = "CRDT"
    etree.SubElement(etree.SubElement(entry, _q("Sts")), _q("Cd")).text = "BOOK"
    etree.SubElement(etree.SubElement(entry, _q("BookgDt")), _q("Dt")).text = "2024-05-21"
    reference = etree.SubElement(entry, _q("AcctSvcrRef"))
    total = 0
    with etree.xmlfile(str(path), encoding="utf-8") as xf:
        xf.write_declaration()
        with xf.element(_q("Document"), nsmap={None: NS}), xf.element(_q("BkToCstmrDbtCdtNtfctn")):
            xf.write(etree.fromstring(f'<GrpHdr xmlns="{NS}"><MsgId>BIG-1</MsgId></GrpHdr>'))
            with xf.element(_q("Ntfctn")):
                xf.write(etree.fromstring(f'<Id xmlns="{NS}">NTFCTN-1</Id>'))
                xf.write(etree.fromstring(f'<Acct xmlns="{NS}"><Id><IBAN>{OWN_IBAN}</IBAN></Id></Acct>'))
                for n in range(entries):
                    cents = 1 + (n * 7919) % 250_000  # 0.01 to 2,500.00, every cent pattern
                    total += cents
                    amount.text = f"{cents // 100}.{cents % 100:02d}"
                    reference.text = f"RF{n:020d}-PO"
                    xf.write(entry)  # the same element, new texts: the writer never holds more than one entry
    return total


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class _PeakRss(threading.Thread):
    """Samples resident memory every few milliseconds until stopped; `peak` is the highest seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.baseline = _rss_bytes() or 0
        self.peak = self.baseline
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.002):
            self.peak = max(self.peak, _rss_bytes() or 0)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        self.peak = max(self.peak, _rss_bytes() or 0)
        return self.peak - self.baseline


_TREE_SIZE_SCRIPT = """
import os, sys
from lxml import etree
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
tree = etree.parse(sys.argv[1])
print(rss() - before)
"""


def _tree_bytes(sample: Path) -> int:
    """Memory a whole parsed tree of `sample` takes, measured in a fresh process (no reused heap)."""
    done = subprocess.run([sys.executable, "-c", _TREE_SIZE_SCRIPT, str(sample)], capture_output=True, text=True,
                          check=True, timeout=60)  # fmt: skip
    return int(done.stdout.strip())


def test_a_large_camt054_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "camt054-large.xml"
    started = time.perf_counter()
    total = write_camt054(path, ENTRIES)
    written = time.perf_counter() - started
    sample = tmp_path / "camt054-sample.xml"
    write_camt054(sample, SAMPLE_ENTRIES)
    tree_estimate = _tree_bytes(sample) * ENTRIES // SAMPLE_ENTRIES

    gc.collect()
    sampler = _PeakRss()
    sampler.start()
    started = time.perf_counter()
    bank_file = read_bank_file(path)
    seconds = time.perf_counter() - started
    growth = sampler.stop()
    rows = bank_file.rows

    mb = 1024 * 1024
    print(
        f"\n{ENTRIES:,} entries, {path.stat().st_size / mb:.0f} MB file written in {written:.1f} s; read in "
        f"{seconds:.1f} s ({ENTRIES / seconds:,.0f} entries/s); peak memory growth {growth / mb:.0f} MB "
        f"(rows frame {rows.estimated_size() / mb:.0f} MB) against {tree_estimate / mb:.0f} MB for the whole tree"
    )
    assert len(rows) == ENTRIES
    assert rows["amount_cents"].sum() == total
    assert rows["row_problem"].null_count() == ENTRIES
    assert rows["entry_ref"].n_unique() == ENTRIES
    assert rows["entry_ref"][ENTRIES - 1] == f"RF{ENTRIES - 1:020d}-PO"
    assert bank_file.statements[0].entries == ENTRIES and bank_file.message_id == "BIG-1"
    if _rss_bytes() is None:
        return  # no /proc: the row checks above still ran; memory is not measurable here
    assert tree_estimate > 100 * mb, "the sample should show what a whole tree costs"
    assert growth < tree_estimate / 4, f"grew {growth / mb:.0f} MB, a whole tree is {tree_estimate / mb:.0f} MB"
