-- Payment files: the registry of every pain.001 / pain.008 the platform writes, what is in each, and the
-- merchant collections. Standard SQL only.

ALTER TABLE merchants ADD COLUMN pay_on_release BOOLEAN DEFAULT FALSE;

-- One row per file ever written. msg_id is unique across every file; a file is never rewritten.
CREATE TABLE payment_files (
    file_id        VARCHAR PRIMARY KEY,      -- the MsgId
    file_name      VARCHAR NOT NULL UNIQUE,
    kind           VARCHAR NOT NULL,         -- collection (pain.008) | payout (pain.001)
    message_type   VARCHAR NOT NULL,         -- e.g. pain.001.001.03
    partition_key  VARCHAR NOT NULL,         -- the ISO week, e.g. 2024-W21
    run_label      VARCHAR NOT NULL,         -- main | midweek
    seq            INTEGER NOT NULL,
    n_tx           INTEGER NOT NULL,
    ctrl_sum_cents BIGINT NOT NULL,
    sha256         VARCHAR NOT NULL,
    requested_on   DATE NOT NULL,            -- execution date (pain.001) or collection date (pain.008)
    validation     VARCHAR NOT NULL,         -- 'valid' or the XSD errors
    status         VARCHAR NOT NULL,         -- written | released | acknowledged | rejected | cancelled
    created_at     TIMESTAMP NOT NULL,
    released_at    TIMESTAMP,
    released_by    VARCHAR,
    UNIQUE (partition_key, kind, seq)
);

-- Every transaction of every file: a payout of one refund, or the collection of one merchant's refunds.
CREATE TABLE payment_file_items (
    file_id         VARCHAR NOT NULL,
    end_to_end_id   VARCHAR NOT NULL,
    payment_info_id VARCHAR NOT NULL,
    refund_id       VARCHAR,                 -- payouts
    collection_id   VARCHAR,                 -- collections
    merchant_id     VARCHAR NOT NULL,
    amount_cents    BIGINT NOT NULL,
    outcome         VARCHAR,                 -- what the bank did: executed | returned | rejected (null: not yet)
    PRIMARY KEY (file_id, end_to_end_id)
);

CREATE TABLE collections (
    collection_id   VARCHAR PRIMARY KEY,
    merchant_id     VARCHAR NOT NULL,
    partition_key   VARCHAR NOT NULL,
    run_label       VARCHAR NOT NULL,
    mandate_id      VARCHAR NOT NULL,
    sequence_type   VARCHAR NOT NULL,        -- FRST | RCUR
    collection_date DATE NOT NULL,
    refunds_cents   BIGINT NOT NULL,         -- the refunds' payouts it covers
    fee_cents       BIGINT NOT NULL,         -- per-refund collection fee charged to the merchant
    amount_cents    BIGINT NOT NULL,         -- what is debited: refunds plus fee
    status          VARCHAR NOT NULL,        -- in_file | released | booked | returned | cancelled
    created_at      TIMESTAMP NOT NULL
);

-- Which refunds a collection covers. A refund is collected once: the primary key says so.
CREATE TABLE collection_refunds (
    refund_id      VARCHAR PRIMARY KEY,
    collection_id  VARCHAR NOT NULL
);
