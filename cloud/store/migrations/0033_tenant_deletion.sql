-- Deleting a tenant: first scheduled ("deleting": access refused, data kept, the deletion
-- can still be cancelled), then, after the grace period and an export of its data, purged
-- ("deleted": the row stays so the slug is never reused and the audit log and usage keep
-- their tenant).

ALTER TABLE tenants DROP CONSTRAINT tenants_status_check;
ALTER TABLE tenants
    ADD CONSTRAINT tenants_status_check
        CHECK (status IN ('active', 'suspended', 'deleting', 'deleted')),
    ADD COLUMN deletion_due_at timestamptz,
    ADD COLUMN exported_to text,
    ADD CHECK ((status = 'deleting') = (deletion_due_at IS NOT NULL));
