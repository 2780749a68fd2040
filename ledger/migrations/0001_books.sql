-- The books: merchants and their customers' orders as the shops export them, refunds and their audit
-- trail, and the double-entry ledger. Standard SQL only, so PostgreSQL runs it unchanged.

CREATE TABLE merchants (
    merchant_id        VARCHAR PRIMARY KEY,
    name               VARCHAR NOT NULL,
    iban               VARCHAR NOT NULL,
    iban_problem       VARCHAR,
    bic                VARCHAR,
    funding            VARCHAR NOT NULL,
    mandate_id         VARCHAR,
    mandate_signed_on  DATE,
    waiting_days       INTEGER NOT NULL,
    refund_window_days INTEGER NOT NULL,
    only_refund_paid   BOOLEAN NOT NULL,
    collection         VARCHAR NOT NULL,
    declared_balance_cents BIGINT NOT NULL,
    blocked            BOOLEAN NOT NULL DEFAULT FALSE,
    source_file        VARCHAR NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);

CREATE TABLE excluded_ibans (
    iban   VARCHAR PRIMARY KEY,
    owner  VARCHAR NOT NULL,
    kind   VARCHAR NOT NULL
);

CREATE TABLE orders (
    order_id          VARCHAR PRIMARY KEY,
    merchant_id       VARCHAR NOT NULL,
    customer_name     VARCHAR NOT NULL,
    customer_email    VARCHAR,
    customer_iban     VARCHAR,
    customer_iban_problem VARCHAR,
    amount_cents      BIGINT NOT NULL,
    paid_cents        BIGINT NOT NULL,
    ordered_on        DATE NOT NULL,
    instalments       INTEGER NOT NULL,
    instalments_paid  INTEGER NOT NULL,
    refundable        BOOLEAN NOT NULL,
    source_file       VARCHAR NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);

CREATE TABLE payments (
    payment_id        VARCHAR PRIMARY KEY,
    merchant_id       VARCHAR NOT NULL,
    payer_name        VARCHAR NOT NULL,
    payer_iban        VARCHAR,
    payer_iban_problem VARCHAR,
    amount_cents      BIGINT NOT NULL,
    received_on       DATE NOT NULL,
    source_file       VARCHAR NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);

-- One row per refund the shops asked for, including the refused ones (status 'rejected').
-- refund_id is the platform's own deterministic, SEPA-safe identifier.
CREATE TABLE refunds (
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
    recorded_at        TIMESTAMP NOT NULL,
    UNIQUE (merchant_id, refund_ref)
);

-- Audit trail: every status change of every refund, append-only. event_seq orders events that share a
-- transaction (and so a timestamp).
CREATE SEQUENCE refund_event_seq START 1;
CREATE TABLE refund_events (
    event_seq    BIGINT NOT NULL DEFAULT nextval('refund_event_seq'),
    event_id     VARCHAR PRIMARY KEY,
    refund_id    VARCHAR NOT NULL,
    from_status  VARCHAR,
    to_status    VARCHAR NOT NULL,
    actor        VARCHAR NOT NULL,
    reason       VARCHAR NOT NULL,
    occurred_at  TIMESTAMP NOT NULL
);

-- Double-entry ledger, append-only. A transfer's postings sum to zero; the id makes posting idempotent.
CREATE TABLE transfers (
    transfer_id  VARCHAR PRIMARY KEY,
    kind         VARCHAR NOT NULL,
    refund_id    VARCHAR,
    merchant_id  VARCHAR,
    memo         VARCHAR,
    booked_at    TIMESTAMP NOT NULL
);

CREATE TABLE postings (
    transfer_id  VARCHAR NOT NULL,
    account      VARCHAR NOT NULL,
    amount_cents BIGINT NOT NULL,
    currency     VARCHAR NOT NULL,
    PRIMARY KEY (transfer_id, account)
);

-- Customer- and merchant-facing events; sending them is outside the product.
CREATE TABLE notifications (
    notification_id VARCHAR PRIMARY KEY,
    recipient       VARCHAR NOT NULL,
    refund_id       VARCHAR,
    merchant_id     VARCHAR,
    template        VARCHAR NOT NULL,
    data            VARCHAR NOT NULL,
    created_at      TIMESTAMP NOT NULL
);

-- Shop export files already loaded (by content hash), and the rows they could not load.
CREATE TABLE intake_files (
    sha256       VARCHAR PRIMARY KEY,
    file_name    VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,
    rows_total   INTEGER NOT NULL,
    rows_loaded  INTEGER NOT NULL,
    rows_rejected INTEGER NOT NULL,
    imported_at  TIMESTAMP NOT NULL
);

CREATE TABLE rejects (
    file_sha256  VARCHAR NOT NULL,
    file_name    VARCHAR NOT NULL,
    line         INTEGER NOT NULL,
    column_name  VARCHAR,
    value        VARCHAR,
    problem      VARCHAR NOT NULL,
    severity     VARCHAR NOT NULL,
    imported_at  TIMESTAMP NOT NULL
);
