-- Detection leaves the ingest transaction.
--
-- The ingest transaction used to score its batches before committing, holding the round
-- (and the gateways' acks) for the detector states' round trips. Now it only records, in
-- the same statement that inserts the `ingested_batches` rows, which of the new batches
-- still have to be scored; the ingester's detection worker scores them right after the
-- commit, in its own transaction, and deletes their rows there. A batch is therefore
-- scored exactly once: the worker (or a sweep scoring what a stopped ingester left
-- behind) claims a batch by deleting its row, and scores only what it claimed.

CREATE TABLE detection_backlog (
    tenant_id       bigint NOT NULL,
    gateway_id      bigint NOT NULL,
    epoch           bigint NOT NULL,
    seq             bigint NOT NULL,
    received_at     timestamptz NOT NULL,
    PRIMARY KEY (gateway_id, epoch, seq),
    -- Retention deleting a batch's bookkeeping takes its pending scoring with it.
    FOREIGN KEY (gateway_id, epoch, seq) REFERENCES ingested_batches (gateway_id, epoch, seq)
        ON DELETE CASCADE
);
-- The sweep's question: what has waited longer than a live batch ever should?
CREATE INDEX detection_backlog_received ON detection_backlog (received_at);

ALTER TABLE detection_backlog ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON detection_backlog
    USING (tenant_id = wellpulse_current_tenant());
