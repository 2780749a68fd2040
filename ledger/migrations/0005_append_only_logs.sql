-- The audit trail and the postings' legs are append-only logs written a million rows a week. A primary key
-- index on them costs more than all the rest of the write (DuckDB keeps an ART index per key), and guards
-- nothing that is not guarded already: event ids are unique by construction, and a transfer's legs are
-- written only in the transaction that inserts its head, whose transfer_id is the primary key of
-- `transfers` (so a transfer posted twice fails as a whole). The tables are rebuilt without the keys.

CREATE TABLE refund_events_log (
    event_seq    BIGINT NOT NULL DEFAULT nextval('refund_event_seq'),
    event_id     VARCHAR NOT NULL,
    refund_id    VARCHAR NOT NULL,
    from_status  VARCHAR,
    to_status    VARCHAR NOT NULL,
    actor        VARCHAR NOT NULL,
    reason       VARCHAR NOT NULL,
    occurred_at  TIMESTAMP NOT NULL
);
INSERT INTO refund_events_log SELECT * FROM refund_events;
DROP TABLE refund_events;
ALTER TABLE refund_events_log RENAME TO refund_events;

CREATE TABLE postings_log (
    transfer_id  VARCHAR NOT NULL,
    account      VARCHAR NOT NULL,
    amount_cents BIGINT NOT NULL,
    currency     VARCHAR NOT NULL
);
INSERT INTO postings_log SELECT * FROM postings;
DROP TABLE postings;
ALTER TABLE postings_log RENAME TO postings;
