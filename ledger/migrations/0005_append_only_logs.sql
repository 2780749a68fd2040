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

-- A file's items are unique by EndToEndId when the file is built (the writers refuse duplicates), and no
-- refund or collection may be in two live files (checked before release, `file_problems`). Notifications
-- are queued only where their id is not yet known. Neither needs an index for that.
CREATE TABLE payment_file_items_log (
    file_id         VARCHAR NOT NULL,
    end_to_end_id   VARCHAR NOT NULL,
    payment_info_id VARCHAR NOT NULL,
    refund_id       VARCHAR,                 -- payouts
    collection_id   VARCHAR,                 -- collections
    merchant_id     VARCHAR NOT NULL,
    amount_cents    BIGINT NOT NULL,
    outcome         VARCHAR                  -- what the bank did: executed | returned | rejected (null: not yet)
);
INSERT INTO payment_file_items_log SELECT * FROM payment_file_items;
DROP TABLE payment_file_items;
ALTER TABLE payment_file_items_log RENAME TO payment_file_items;

CREATE TABLE notifications_log (
    notification_id VARCHAR NOT NULL,
    recipient       VARCHAR NOT NULL,
    refund_id       VARCHAR,
    merchant_id     VARCHAR,
    template        VARCHAR NOT NULL,
    data            VARCHAR NOT NULL,
    created_at      TIMESTAMP NOT NULL
);
INSERT INTO notifications_log SELECT * FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_log RENAME TO notifications;
