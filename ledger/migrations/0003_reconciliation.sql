-- Reconciliation: the bank files received, every line read from them and what it was matched to, the
-- matches a person must confirm, and the exceptions finance ops work through. Standard SQL only.

CREATE TABLE bank_files (
    sha256        VARCHAR PRIMARY KEY,
    file_name     VARCHAR NOT NULL,
    message_type  VARCHAR,
    message_id    VARCHAR,
    account_iban  VARCHAR,
    lines_total   INTEGER NOT NULL,
    lines_new     INTEGER NOT NULL,
    matched       INTEGER NOT NULL,
    proposed      INTEGER NOT NULL,
    exceptions    INTEGER NOT NULL,
    ignored       INTEGER NOT NULL,
    received_at   TIMESTAMP NOT NULL
);

-- One row per transaction line. line_id is derived from what the bank says about the transaction, so the
-- same line in two overlapping statements is booked once.
CREATE TABLE bank_lines (
    line_id               VARCHAR PRIMARY KEY,
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

CREATE TABLE exceptions (
    exception_id   VARCHAR PRIMARY KEY,       -- the line it is about
    line_id        VARCHAR NOT NULL,
    file_name      VARCHAR NOT NULL,
    refund_id      VARCHAR,
    collection_id  VARCHAR,
    reason         VARCHAR NOT NULL,
    status         VARCHAR NOT NULL,          -- open | resolved
    created_at     TIMESTAMP NOT NULL
);

CREATE TABLE proposed_matches (
    line_id        VARCHAR PRIMARY KEY,
    matched_kind   VARCHAR NOT NULL,
    matched_ref    VARCHAR NOT NULL,
    score          DOUBLE NOT NULL,
    status         VARCHAR NOT NULL,          -- proposed | confirmed | declined
    created_at     TIMESTAMP NOT NULL
);

-- Refunds whose merchant collection was returned for insufficient funds (AM04) and presented again:
-- a refund is presented again once; a second return is escalated.
CREATE TABLE represented_refunds (
    refund_id      VARCHAR NOT NULL,
    collection_id  VARCHAR NOT NULL,   -- the collection that was returned
    represented_at TIMESTAMP NOT NULL,
    PRIMARY KEY (refund_id, collection_id)
);
