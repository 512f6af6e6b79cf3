-- What the registry API manages beyond the first schema: a site's state and operator
-- number (regulatory filings), a well's status and surface location, and when a row was
-- last changed.

ALTER TABLE sites
    ADD COLUMN state text NOT NULL DEFAULT '' CHECK (state ~ '^([A-Z]{2})?$'),
    ADD COLUMN operator_number text NOT NULL DEFAULT '' CHECK (length(operator_number) <= 32),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

ALTER TABLE wells
    ADD COLUMN status text NOT NULL DEFAULT 'producing' CHECK (status IN
        ('drilling', 'completed', 'producing', 'injecting', 'shut_in',
         'temporarily_abandoned', 'plugged_abandoned')),
    ADD COLUMN latitude double precision CHECK (latitude BETWEEN -90 AND 90),
    ADD COLUMN longitude double precision CHECK (longitude BETWEEN -180 AND 180),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD CHECK ((latitude IS NULL) = (longitude IS NULL));
