-- Custom metrics (firmware profiles' `custom.<name>` metrics, with their own unit and kind).
--
-- A series' metric is a canonical vocabulary name, `custom.<name>` for a custom metric, or
-- `vendor:<tag>` for a tag an older birth sent without a metric. Custom metrics are stored
-- and served by their full name; analytics read canonical names only, so a custom series
-- never feeds production, emissions or reports. `namespace` is derived from the name, so it
-- cannot disagree with it; `kind` is how the metric aggregates, as the birth declares it
-- (NULL for births of agents that predate it).
ALTER TABLE series
    ADD COLUMN kind text CHECK (kind IN ('gauge', 'counter', 'state')),
    ADD COLUMN namespace text NOT NULL GENERATED ALWAYS AS (
        CASE
            WHEN metric LIKE 'custom.%' THEN 'custom'
            WHEN metric LIKE 'vendor:%' THEN 'vendor'
            ELSE 'canonical'
        END
    ) STORED;
