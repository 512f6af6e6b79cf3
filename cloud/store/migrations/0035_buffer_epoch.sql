-- Buffer epochs. An agent's seq is strictly increasing within one buffer; a buffer that
-- starts over (its file was lost, or salvaged after damage) starts a new epoch, carried in
-- every batch header. The idempotency key becomes (gateway, epoch, seq): batches of a new
-- buffer never collide with the seqs stored from an earlier one, and a replay within an
-- epoch is still a duplicate. Batches of agents that predate epochs are epoch 0.
ALTER TABLE ingested_batches ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE ingested_batches DROP CONSTRAINT ingested_batches_pkey;
ALTER TABLE ingested_batches ADD CONSTRAINT ingested_batches_pkey
    PRIMARY KEY (gateway_id, epoch, seq);

-- What the gateway's batches came to lately: the API shows a gateway whose batches are
-- refused (and none stored since) as unhealthy rather than online.
ALTER TABLE gateways
    -- Epoch of the newest stored batch's buffer.
    ADD COLUMN buffer_epoch bigint,
    -- When a batch of the gateway was last committed (stored, or found stored).
    ADD COLUMN data_stored_at timestamptz,
    -- When a batch of the gateway was last refused for good, and why.
    ADD COLUMN data_refused_at timestamptz,
    ADD COLUMN data_refusal_reason text;
