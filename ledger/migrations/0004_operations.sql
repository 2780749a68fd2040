-- Finance-ops operations: who prepared and who cancelled a payment file, how each exception was resolved
-- and with whose approval, and an audit log of every operation done by hand. Standard SQL only.

ALTER TABLE payment_files ADD COLUMN prepared_by VARCHAR;     -- who launched (or configured) the run that wrote it
ALTER TABLE payment_files ADD COLUMN cancelled_at TIMESTAMP;
ALTER TABLE payment_files ADD COLUMN cancelled_by VARCHAR;
ALTER TABLE payment_files ADD COLUMN cancel_reason VARCHAR;

-- One row per exception resolved; the exception itself keeps its status.
CREATE TABLE exception_resolutions (
    exception_id   VARCHAR PRIMARY KEY,
    action         VARCHAR NOT NULL,   -- match | bank_charge | send_back | write_off | pay_again | ask_bank_details
                                       -- | represent | dismiss
    matched_kind   VARCHAR,
    matched_ref    VARCHAR,
    amount_cents   BIGINT,             -- what the resolution booked, if anything
    resolved_by    VARCHAR NOT NULL,
    approved_by    VARCHAR,
    reason         VARCHAR NOT NULL,
    resolved_at    TIMESTAMP NOT NULL
);

-- Every operation finance ops did by hand, append-only: what, on what, who, who approved, why.
CREATE TABLE operations_log (
    operation_id   VARCHAR PRIMARY KEY,
    operation      VARCHAR NOT NULL,
    subject        VARCHAR NOT NULL,
    actor          VARCHAR NOT NULL,
    approved_by    VARCHAR,
    reason         VARCHAR NOT NULL,
    detail         VARCHAR,
    occurred_at    TIMESTAMP NOT NULL
);
