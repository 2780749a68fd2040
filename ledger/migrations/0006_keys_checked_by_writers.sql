-- Three more indexes that cost a busy week more than they guard. DuckDB keeps an ART index per key, and
-- inserting a million rows into a VARCHAR key costs seconds; each of these keys is already checked, under
-- the ledger lock (one process writes at a time), by the one function that writes the table:
--   * transfers: `ledger.postings.post_frames` refuses an id given twice and skips (or refuses, if the
--     postings differ) an id already booked, in the transaction that inserts it;
--   * bank_lines: `ledger.reconciliation.reconcile_bank_file` books only lines whose line_id is not yet
--     known, and renames a line repeated within one file (`-copy-N`);
--   * refunds' UNIQUE (merchant_id, refund_ref): refund_id is derived from that pair
--     (`ledger.intake.refund_id_for`), so refund_id's primary key, kept, already makes the pair unique.
-- Over the whole books, `ledger.postings.reused_transfer_ids` and `ledger.reconciliation.repeated_lines` find
-- any id written twice past those functions; the blocking asset checks of the nightly and reconcile runs run
-- them. The tables are rebuilt without these keys.

CREATE TABLE transfers_log (
    transfer_id  VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,
    refund_id    VARCHAR,
    merchant_id  VARCHAR,
    memo         VARCHAR,
    booked_at    TIMESTAMP NOT NULL
);
INSERT INTO transfers_log SELECT * FROM transfers;
DROP TABLE transfers;
ALTER TABLE transfers_log RENAME TO transfers;

CREATE TABLE bank_lines_log (
    line_id               VARCHAR NOT NULL,
    file_sha256           VARCHAR NOT NULL,
    file_name             VARCHAR NOT NULL,
    message_type          VARCHAR,
    message_id            VARCHAR,
    account_iban          VARCHAR,
    entry_ref             VARCHAR,
    booking_date          DATE,
    value_date            DATE,
    status                VARCHAR,
    direction             VARCHAR,
    amount_cents          BIGINT,
    currency              VARCHAR,
    reversal              BOOLEAN,
    bank_tx_code          VARCHAR,
    end_to_end_id         VARCHAR,
    payment_info_id       VARCHAR,
    return_reason         VARCHAR,
    return_info           VARCHAR,
    charges_cents         BIGINT,
    counterparty_name     VARCHAR,
    counterparty_iban     VARCHAR,
    outcome               VARCHAR NOT NULL,   -- matched | proposed | exception | ignored
    matched_kind          VARCHAR,            -- payout | collection | payout_file | collection_file
    matched_ref           VARCHAR,            -- refund_id, collection_id or file_id
    event                 VARCHAR,            -- executed | returned | booked | rejected | accepted
    note                  VARCHAR,
    recorded_at           TIMESTAMP NOT NULL
);
INSERT INTO bank_lines_log SELECT * FROM bank_lines;
DROP TABLE bank_lines;
ALTER TABLE bank_lines_log RENAME TO bank_lines;

CREATE TABLE refunds_keyed (
    refund_id          VARCHAR PRIMARY KEY,
    refund_ref         VARCHAR NOT NULL,
    merchant_id        VARCHAR NOT NULL,
    order_id           VARCHAR,
    payment_id         VARCHAR,
    amount_cents       BIGINT NOT NULL,
    payout_cents       BIGINT NOT NULL,
    cancelled_instalments_cents BIGINT NOT NULL,
    cancelled_instalments VARCHAR,
    requested_on       DATE NOT NULL,
    request_reason     VARCHAR,
    customer_name      VARCHAR,
    customer_iban      VARCHAR,
    iban_problem       VARCHAR,  -- why the IBAN on record cannot be paid to (null: it can)
    iban_confirmed     BOOLEAN NOT NULL DEFAULT FALSE,
    status             VARCHAR NOT NULL,
    status_reason      VARCHAR,
    due_on             DATE,
    source_file        VARCHAR NOT NULL,
    source_line        INTEGER NOT NULL,
    recorded_at        TIMESTAMP NOT NULL
);
INSERT INTO refunds_keyed SELECT * FROM refunds;
DROP TABLE refunds;
ALTER TABLE refunds_keyed RENAME TO refunds;
