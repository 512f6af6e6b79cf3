-- Message keys of each gateway (see `wire::seal`): every message on a gateway's topics is
-- sealed with HMAC-SHA256 under a key both ends derive from the gateway's MQTT password,
-- HMAC-SHA256(password, "wellpulse/v1/message-key"). Only the derived keys are stored
-- (the password never is); they cannot be turned back into the password.
--
-- A list, current key first: while credentials rotate with an overlap window the previous
-- key stays valid next to the new one (at most 4; the application keeps 2). Gateways
-- provisioned before this migration have no key, so their messages are refused as
-- `unauthenticated` until they are provisioned again (`wellpulse-cloud provision-gateway`
-- with their current password re-creates the key without changing anything else).
ALTER TABLE gateways
    ADD COLUMN message_keys bytea[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(message_keys) <= 4 AND array_position(message_keys, NULL) IS NULL);
