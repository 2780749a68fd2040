"""Hostile bank files through the real reconcile job: a file refused as a whole is moved to
`archive/bank-refused/`, the run says why (file, line, problem), and the ledger is exactly as it was; a file
with some unreadable lines books its good lines and puts each bad one in the exceptions queue with its
reason; a file or a line seen before books nothing twice.

Every test starts from the same installation (built once per module and copied): the small export loaded,
week 2024-W21's files written and released, so M1's collection of EUR 50.00 is in transit; the sandbox bank's
answer to it (a pain.002, a camt.054 booking the collection, a camt.053 repeating that booking) is kept aside
for the tests to offer, spoil or repeat.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import dagster as dg
import polars as pl
import pytest

from ledger.db import open_ledger
from ledger.postings import balance, ledger_total
from ledger.reconciliation import DUPLICATE_NOTE, list_exceptions, unaccounted_lines
from pipelines.definitions import build_definitions
from pipelines.jobs import nightly_run_config, release_run_config, weekly_run_config
from pipelines.sandbox_bank import answer_released_files
from pipelines.settings import Home
from tests.conftest import small_export
from tests.reliability.figures import tally

WEEK = "2024-05-20"
COLLECTION_CENTS = 5000  # M1's collection: R1's EUR 50.00 after the seed's instalments
HELD_CENTS = 30000  # M2's declared balance, in the platform's account since intake
BEFORE = (HELD_CENTS, COLLECTION_CENTS, "released")  # (platform bank, collections in transit, collection status)
BOOKED = (HELD_CENTS + COLLECTION_CENTS, 0, "booked")
PASSWD_MARKER = "root:"


# --- one installation, built once ---------------------------------------------------------------------------


def run(
    home: Home, instance: dg.DagsterInstance, job: str, config: dict | None = None, partition: str | None = None
) -> dg.ExecuteInProcessResult:
    return (
        build_definitions(home)
        .resolve_job_def(job)
        .execute_in_process(run_config=config or {}, instance=instance, partition_key=partition, raise_on_error=False)
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """The installation every test copies: W21 released, the bank's answers in `answers/`, the inbox empty."""
    root = tmp_path_factory.mktemp("hostile-bank") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PAYOUTS_HOME", str(root))
        patch.setenv("DAGSTER_HOME", str(root / "dagster"))
        home = Home(root).prepare()
        with dg.DagsterInstance.ephemeral(tempdir=str(home.dagster)) as instance:
            small_export(home.shop_inbox)
            for job, config, partition in [
                ("nightly", nightly_run_config(WEEK), None),
                ("weekly", weekly_run_config("main"), WEEK),
                ("release", release_run_config("alice", None), None),
            ]:
                assert run(home, instance, job, config, partition).success, job
        answers = root / "answers"
        answers.mkdir()
        for path in answer_released_files(home, return_rate=0.0, seed=1):
            shutil.move(path, answers / path.name.split("-")[-1])  # pain002.xml, camt054.xml, camt053.xml
    assert sorted(p.name for p in answers.iterdir()) == ["camt053.xml", "camt054.xml", "pain002.xml"]
    return home


@pytest.fixture
def released(home: Home, template: Home) -> Home:
    """A private copy of the template installation (its own ledger, outbox and answers; a new Dagster home)."""
    for item in template.root.iterdir():
        if item.name == "dagster" or item.name.endswith(".lock"):
            continue
        target = home.root / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
    return home


@pytest.fixture
def instance(released: Home) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral(tempdir=str(released.dagster)) as instance:
        yield instance


def answer(home: Home, kind: str) -> bytes:
    """The sandbox bank's answer to W21's collection file: `pain002`, `camt054` or `camt053`."""
    return (home.root / "answers" / f"{kind}.xml").read_bytes()


def reconcile(home: Home, instance: dg.DagsterInstance, name: str, data: bytes) -> dg.ExecuteInProcessResult:
    """Upload `data` as inbox/bank/`name` and run the reconcile job on it, as the sensor would."""
    home.bank_inbox.mkdir(parents=True, exist_ok=True)
    (home.bank_inbox / name).write_bytes(data)
    instance.add_dynamic_partitions("bank_files", [name])
    return run(home, instance, "reconcile", partition=name)


def refusal(result: dg.ExecuteInProcessResult) -> str:
    """The reason a reconcile run gave for refusing its file."""
    assert not result.success
    failure = result.failure_data_for_node("reconciled_bank_files")
    assert failure is not None and failure.user_failure_data is not None
    return failure.user_failure_data.description or ""


def materialized(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    """The metadata values of the run's reconciled_bank_files materialization."""
    assert result.success
    (event,) = result.asset_materializations_for_node("reconciled_bank_files")
    return {key: value.value for key, value in event.metadata.items()}


def ledger_state(home: Home) -> dict[str, object]:
    """Everything reconciliation could change: postings, balances, bank files and lines, exceptions, statuses."""
    with open_ledger(home.ledger) as con:

        def rows(sql: str) -> list[tuple]:
            return con.execute(sql).fetchall()

        return {
            "postings": rows("SELECT transfer_id, account, amount_cents FROM postings ORDER BY ALL"),
            "balances": rows("SELECT account, SUM(amount_cents) FROM postings GROUP BY account ORDER BY account"),
            "bank_files": rows("SELECT sha256, file_name FROM bank_files ORDER BY ALL"),
            "bank_lines": rows("SELECT line_id, outcome FROM bank_lines ORDER BY ALL"),
            "exceptions": rows("SELECT exception_id, reason FROM exceptions ORDER BY ALL"),
            "collections": rows("SELECT collection_id, status FROM collections ORDER BY ALL"),
            "refunds": rows("SELECT refund_id, status FROM refunds ORDER BY ALL"),
            "payment_files": rows("SELECT file_id, status FROM payment_files ORDER BY ALL"),
            "notifications": rows("SELECT notification_id FROM notifications ORDER BY ALL"),
        }


def money(home: Home) -> tuple[int, int, str]:
    """(platform bank balance, collections in transit, M1's collection status)."""
    with open_ledger(home.ledger) as con:
        (status,) = con.execute("SELECT status FROM collections").fetchone()
        return balance(con, "platform:bank"), balance(con, "platform:collections_in_transit"), status


# --- whole files refused --------------------------------------------------------------------------------------


def _with_doctype(data: bytes, doctype: str) -> bytes:
    """The document with `doctype` before its root and an entity reference as its MsgId."""
    text = data.decode().replace("<Document", doctype + "\n<Document", 1)
    reference = "&xxe;" if "xxe" in doctype else "&lol9;"
    return re.sub(r"<MsgId>[^<]*</MsgId>", f"<MsgId>{reference}</MsgId>", text, count=1).encode()


def _laughs() -> str:
    entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return "<!DOCTYPE Document [" + "".join(entities) + "]>"


def _cut_after_the_entry(data: bytes) -> bytes:
    """Everything up to and including the booking entry: every transaction is there, the file is not."""
    return data[: data.index(b"</Ntry>") + len(b"</Ntry>")]


def _deeply_nested(data: bytes) -> bytes:
    depth = 100_000
    return data.replace(b"<GrpHdr>", b"<GrpHdr>" + b"<x>" * depth + b"</x>" * depth, 1)


def _our_own_payment_file(home: Home) -> bytes:
    (released,) = (home.outbox / "released").glob("*.xml")
    return released.read_bytes()


HOSTILE = {
    # name: (how the file is made from the installation, what the refusal must say)
    "xxe": (lambda h: _with_doctype(answer(h, "camt054"), '<!DOCTYPE Document [<!ENTITY xxe SYSTEM '
                                                          '"file:///etc/passwd">]>'),
            r"line 3: refused: the document has a DOCTYPE \(DTDs and entity declarations are not allowed"),
    "billion-laughs": (lambda h: _with_doctype(answer(h, "camt054"), _laughs()),
                       r"line 3: refused: the document has a DOCTYPE"),
    "truncated": (lambda h: _cut_after_the_entry(answer(h, "camt054")), r"line \d+: truncated XML, the document ends"),
    "truncated-status-report": (lambda h: answer(h, "pain002")[:-60], r"line \d+: (truncated|not well-formed)"),
    "deeply-nested": (lambda h: _deeply_nested(answer(h, "camt053")), r"line \d+: not well-formed .*[Dd]epth"),
    "not-xml": (lambda h: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj", r"line 1: not well-formed or truncated XML"),
    "our-own-pain008": (_our_own_payment_file,
                        r"line \d+: <CstmrDrctDbtInitn> is not a camt\.052/053/054 or pain\.002 message"),
    "empty": (lambda h: b"", r"the file is empty"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_file_is_refused_quarantined_and_books_nothing(
    released: Home, instance: dg.DagsterInstance, case: str
) -> None:
    """The run fails naming the file and the problem, the file moves untouched to archive/bank-refused/,
    and not one posting, bank line, exception or status changes: not even for the XXE, bomb and cut-off
    copies of the bank's real booking of M1's collection, whose transaction would otherwise match."""
    make, pattern = HOSTILE[case]
    data = make(released)
    name = f"{case}.xml"
    before = ledger_state(released)

    message = refusal(reconcile(released, instance, name, data))

    assert message.startswith(f"refused: {name}: ") and "\n" not in message, message
    assert re.search(pattern, message), message
    assert PASSWD_MARKER not in message and "lollol" not in message
    quarantined = released.root / "archive" / "bank-refused" / name
    assert quarantined.read_bytes() == data
    assert not (released.bank_inbox / name).exists()
    assert not (released.root / "archive" / "bank" / name).exists()
    assert ledger_state(released) == before
    assert money(released) == BEFORE
    tally("hostile bank files refused")


def test_the_complete_file_after_a_refused_cut_off_copy_is_booked_once(
    released: Home, instance: dg.DagsterInstance
) -> None:
    """The cut-off upload is refused and books nothing; the bank's complete file, uploaded under the same
    name afterwards, books the collection, once."""
    whole = answer(released, "camt054")
    assert "truncated" in refusal(reconcile(released, instance, "camt054.xml", _cut_after_the_entry(whole)))
    tally("hostile bank files refused")
    assert money(released) == BEFORE

    done = materialized(reconcile(released, instance, "camt054.xml", whole))
    assert (done["lines"], done["matched"], done["exceptions"]) == (1, 1, 0)
    assert money(released) == BOOKED
    assert (released.root / "archive" / "bank" / "camt054.xml").read_bytes() == whole


# --- lines with bad money ---------------------------------------------------------------------------------------

BOOKING = '<Amt Ccy="EUR">50.00</Amt>'
BAD_LINES = {
    # entry reference: (amount text, currency, what the exception must say)
    "BAD-EXPONENT": ("5E1", "EUR", "'5E1' is not a number"),
    "BAD-XXX": ("50.00", "XXX", "currency 'XXX' is ISO 4217's code for no currency, not money"),
    "BAD-QQQ": ("50.00", "QQQ", "currency 'QQQ' is not an ISO 4217 currency code"),
    "BAD-EURO": ("50.00", "EURO", "currency 'EURO' is not an ISO currency code"),
    "BAD-NEGATIVE": ("-50.00", "EUR", "'-50.00' is negative"),
    "BAD-DECIMALS": ("50.001", "EUR", "'50.001' has more than 2 decimals"),
    "BAD-ABSURD": ("100000000000000000000.00", "EUR", "'100000000000000000000.00' is too large"),
}


def _entry(document: str) -> tuple[int, int]:
    start = document.index("<Ntry>")
    return start, document.index("</Ntry>", start) + len("</Ntry>")


def _with_entries(data: bytes, extra: list[str]) -> bytes:
    """The camt document with `extra` entries before its own one."""
    text = data.decode()
    start, _end = _entry(text)
    return (text[:start] + "\n".join(extra) + "\n" + text[start:]).encode()


def _copy_of_the_booking(data: bytes, ref: str, amount: str = "50.00", currency: str = "EUR") -> str:
    """The booking entry again, under entry reference `ref`, with every amount of it set to `amount`."""
    text = data.decode()
    start, end = _entry(text)
    own_ref = re.search(r"<NtryRef>([^<]+)</NtryRef>", text[start:end]).group(1)  # type: ignore[union-attr]
    copy = text[start:end].replace(own_ref, ref)
    return re.sub(r'(<(?:Amt|TtlAmt)) Ccy="EUR">50\.00<', rf'\1 Ccy="{currency}">{amount}<', copy)


def test_lines_with_bad_money_are_exceptions_and_the_good_line_is_booked(
    released: Home, instance: dg.DagsterInstance
) -> None:
    """One camt.054: the bank's real booking of M1's collection and seven copies whose amount or currency
    cannot be money (exponent, XXX, an unknown code, EURO, negative, three decimals, 10^20 EUR). The booking
    is matched and the collection booked (EUR 50.00 in the platform's account, nothing in transit); each bad
    line is stored without an amount and waits in the exceptions queue with its line and problem; the
    blocking check passes (no line dropped, the ledger sums to zero)."""
    whole = answer(released, "camt054")
    extra = [_copy_of_the_booking(whole, ref, amount, currency) for ref, (amount, currency, _) in BAD_LINES.items()]
    data = _with_entries(whole, extra)
    text_lines = data.decode().splitlines()

    result = reconcile(released, instance, "mixed.xml", data)

    done = materialized(result)
    assert (done["lines"], done["matched"], done["exceptions"]) == (1 + len(BAD_LINES), 1, len(BAD_LINES))
    assert all(check.passed for check in result.get_asset_check_evaluations())
    assert money(released) == BOOKED
    with open_ledger(released.ledger) as con:
        queue = list_exceptions(con).filter(list_exceptions(con)["file_name"] == "mixed.xml")
        lines = dict(
            con.execute("SELECT entry_ref, amount_cents FROM bank_lines WHERE file_name = 'mixed.xml'").fetchall()
        )
        assert unaccounted_lines(con).is_empty() and ledger_total(con) == 0
    assert {ref: lines[ref] for ref in BAD_LINES} == dict.fromkeys(BAD_LINES)  # never a zero, never rounded
    reasons = dict(zip(queue["entry_ref"], queue["reason"], strict=True))
    assert sorted(reasons) == sorted(BAD_LINES)
    for ref, (amount, _currency, problem) in BAD_LINES.items():
        found = re.fullmatch(r"line (\d+): Amt (.*)", reasons[ref])
        assert found and found.group(2) == problem, reasons[ref]
        assert amount in text_lines[int(found.group(1)) - 1]  # the line named is the line of the bad amount


# --- duplicates ---------------------------------------------------------------------------------------------------


def test_the_same_bank_file_or_its_bookings_again_book_nothing(released: Home, instance: dg.DagsterInstance) -> None:
    """The camt.054 booked once; the same bytes uploaded again under another name, and the camt.053
    repeating its booking: both reconcile without booking anything (recognised by hash, and line by line)."""
    booked = answer(released, "camt054")
    assert materialized(reconcile(released, instance, "first.xml", booked))["matched"] == 1
    after_first = ledger_state(released)

    again = materialized(reconcile(released, instance, "second-upload.xml", booked))
    assert again["already_imported"] is True and again["new_lines"] == 0
    assert ledger_state(released) == after_first
    tally("duplicates refused")

    statement = materialized(reconcile(released, instance, "statement.xml", answer(released, "camt053")))
    assert (statement["lines"], statement["new_lines"]) == (1, 0)
    state = ledger_state(released)
    assert state["postings"] == after_first["postings"] and state["exceptions"] == after_first["exceptions"]
    assert money(released) == BOOKED
    tally("duplicates refused")


def _repeated_in_one_file(released: Home) -> bytes:
    whole = answer(released, "camt054")
    start, end = _entry(whole.decode())
    return _with_entries(whole, [whole.decode()[start:end]])


def test_an_entry_repeated_in_one_file_is_booked_once(released: Home, instance: dg.DagsterInstance) -> None:
    """The bank's booking listed twice, identically, in one file: the collection is booked once."""
    done = materialized(reconcile(released, instance, "twice.xml", _repeated_in_one_file(released)))
    assert done["lines"] == 2 and done["matched"] == 1
    assert money(released) == BOOKED
    tally("duplicates refused")


def test_an_entry_repeated_in_one_file_waits_in_the_exceptions_queue(
    released: Home, instance: dg.DagsterInstance
) -> None:
    reconcile(released, instance, "twice.xml", _repeated_in_one_file(released))
    with open_ledger(released.ledger) as con:
        reasons = list_exceptions(con)["reason"].to_list()
    assert DUPLICATE_NOTE in reasons


def test_a_second_booking_with_the_same_end_to_end_id_is_an_exception(
    released: Home, instance: dg.DagsterInstance
) -> None:
    """Two different entries (their own references) both booking M1's collection's EndToEndId."""
    whole = answer(released, "camt054")
    data = _with_entries(whole, [_copy_of_the_booking(whole, "SECOND-BOOKING")])
    done = materialized(reconcile(released, instance, "two-bookings.xml", data))
    assert money(released) == BOOKED  # booked once, as it must be
    assert done["exceptions"] == 1


def test_a_booking_repeated_by_a_later_file_under_another_reference_is_an_exception(
    released: Home, instance: dg.DagsterInstance
) -> None:
    """The collection booked from one file; a later file books it again in an entry of its own: nothing is
    booked twice, and the second booking waits in the exceptions queue saying what to ask the bank."""
    whole = answer(released, "camt054")
    materialized(reconcile(released, instance, "first.xml", whole))
    assert money(released) == BOOKED
    later = _with_entries(whole, [_copy_of_the_booking(whole, "LATER-BOOKING")])
    done = materialized(reconcile(released, instance, "later.xml", later))
    assert money(released) == BOOKED
    assert (done["new_lines"], done["matched"], done["exceptions"]) == (1, 0, 1)
    with open_ledger(released.ledger) as con:
        queue = list_exceptions(con).filter(pl.col("file_name") == "later.xml")
    (reason,) = queue["reason"].to_list()
    assert "was already booked from an earlier bank file" in reason and "(LATER-BOOKING), dismiss" in reason
    tally("duplicates refused")


# --- money the ledger must not take at face value ------------------------------------------------------------


def test_a_booking_in_another_currency_is_not_booked_as_euros(released: Home, instance: dg.DagsterInstance) -> None:
    whole = answer(released, "camt054")
    data = whole.replace(BOOKING.encode(), b'<Amt Ccy="USD">50.00</Amt>').replace(
        b'<TtlAmt Ccy="EUR">', b'<TtlAmt Ccy="USD">'
    )
    reconcile(released, instance, "usd.xml", data)
    assert money(released) == BEFORE


def test_a_booking_of_another_amount_is_not_booked(released: Home, instance: dg.DagsterInstance) -> None:
    whole = answer(released, "camt054")
    absurd = b'Ccy="EUR">9999999999999999.99<'
    data = whole.replace(b'Ccy="EUR">50.00<', absurd)
    assert data.count(absurd) >= 2
    reconcile(released, instance, "absurd.xml", data)
    assert money(released) == BEFORE
