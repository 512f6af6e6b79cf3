-- WellPulse cloud schema, analytics part 1: daily production, manual corrections, haul
-- tickets, tank strapping, regulatory registry fields, emission sources and daily emissions.
--
-- Data flow (see `cloud::production_job`): telemetry (raw + 1-minute rollups) → daily
-- production per well (`daily_production`, derived by `analytics::production::derive_day`,
-- with `production_corrections` taking precedence) → daily emissions per source
-- (`daily_emissions`, mass per gas; CO2e is computed when a report is made) → regulatory
-- reports (Form PR, C-115) from the monthly totals and the registry fields below.
--
-- Conventions (as in 0001): every table carries `tenant_id` and reaches its parent through a
-- composite `(tenant_id, parent_id)` foreign key; row-level security isolates tenants.
-- Production days are UTC calendar days (the rollups are aligned to UTC midnight).

-- Operator identity for the filings, one row per tenant.
CREATE TABLE tenant_regulatory (
    tenant_id               bigint PRIMARY KEY REFERENCES tenants (id),
    -- Operator name as on the RRC P-5 / OCD registration.
    operator_name           text NOT NULL DEFAULT '',
    -- Texas RRC operator (P-5) number, 6 digits.
    rrc_operator_number     text NOT NULL DEFAULT '',
    -- New Mexico OCD OGRID number.
    nm_ogrid                text NOT NULL DEFAULT '',
    -- CH4 mole fraction of the gas sent to sale (methane intensity denominator).
    sales_gas_ch4_fraction  double precision CHECK (sales_gas_ch4_fraction BETWEEN 0 AND 1),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- Per-well regulatory fields. The lease name, field, county and state stay on `wells`.
CREATE TABLE well_regulatory (
    tenant_id               bigint NOT NULL,
    well_id                 bigint PRIMARY KEY,
    -- Texas RRC Form PR: district (01..10, 6E, 7B, 7C, 8A), oil lease number (5 digits) or
    -- gas well ID (6 digits), lease kind, operator's well number.
    rrc_district            text NOT NULL DEFAULT '',
    rrc_lease_number        text NOT NULL DEFAULT '',
    rrc_lease_kind          text NOT NULL DEFAULT 'oil' CHECK (rrc_lease_kind IN ('oil', 'gas')),
    rrc_well_number         text NOT NULL DEFAULT '',
    -- Form PR disposition codes used for hauled liquid, gas sales and lease fuel.
    rrc_oil_disposition_code smallint NOT NULL DEFAULT 1 CHECK (rrc_oil_disposition_code BETWEEN 0 AND 9),
    rrc_gas_sales_code      smallint NOT NULL DEFAULT 1 CHECK (rrc_gas_sales_code BETWEEN 0 AND 9),
    rrc_lease_fuel_code     smallint NOT NULL DEFAULT 2 CHECK (rrc_lease_fuel_code BETWEEN 0 AND 9),
    -- Authority remarks of flared (code 10) and vented (code 11) gas.
    flare_authority         text[] NOT NULL DEFAULT '{}'
                            CHECK (flare_authority <@ ARRAY['AR', 'AE', 'EP', 'EX']),
    vent_authority          text[] NOT NULL DEFAULT '{}'
                            CHECK (vent_authority <@ ARRAY['AR', 'AE', 'EP', 'EX']),
    -- New Mexico C-115: pool code (5 digits), property code, completion suffix of the API
    -- number (`SS-EE`, appended to the 10-digit API number when the well has several).
    nm_pool_code            text NOT NULL DEFAULT '',
    nm_property_code        text NOT NULL DEFAULT '',
    nm_completion_suffix    text NOT NULL DEFAULT ''
                            CHECK (nm_completion_suffix ~ '^([0-9]{2}-?[0-9]{2})?$'),
    -- Purchasers / transporters (name for Form PR, OGRID for C-115).
    oil_purchaser           text NOT NULL DEFAULT '',
    oil_purchaser_ogrid     text NOT NULL DEFAULT '',
    gas_purchaser           text NOT NULL DEFAULT '',
    gas_purchaser_ogrid     text NOT NULL DEFAULT '',
    updated_at              timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, well_id) REFERENCES wells (tenant_id, id)
);

-- Daily production per well and quantity, derived from telemetry (re-derived on demand and
-- periodically, so late backfill corrects the figures). `volume` NULL = unknown (never a
-- silent zero); gaps are the parts of the day without data.
CREATE TABLE daily_production (
    tenant_id           bigint NOT NULL,
    well_id             bigint NOT NULL,
    day                 date NOT NULL,
    quantity            text NOT NULL
                        CHECK (quantity IN ('oil', 'gas', 'water', 'flared', 'vented', 'fuel')),
    volume              double precision CHECK (volume IS NULL OR (volume > '-Infinity' AND volume < 'Infinity')),
    unit                text NOT NULL CHECK (unit IN ('bbl', 'Mcf')),
    method              text NOT NULL CHECK (method IN ('tank_gauge', 'meter_total',
                            'flow_computer_daily', 'rate_integration', 'manual_correction', 'missing')),
    -- Covered fraction of the day, 0..1, and the gaps ([start, end) pairs).
    coverage            double precision NOT NULL CHECK (coverage BETWEEN 0 AND 1),
    gap_starts          timestamptz[] NOT NULL DEFAULT '{}',
    gap_ends            timestamptz[] NOT NULL DEFAULT '{}',
    -- For a manual correction: the telemetry-derived figure kept beside it.
    derived_volume      double precision,
    derived_method      text,
    derived_coverage    double precision,
    correction_id       bigint,
    correction_reference text,
    -- Oil and water: sum of the well's tank stocks at the end of the day, bbl (NULL unknown).
    closing_stock       double precision,
    -- Counter rollovers/resets and derivation issues, human readable.
    notes               text[] NOT NULL DEFAULT '{}',
    derived_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (well_id, day, quantity),
    CHECK (cardinality(gap_starts) = cardinality(gap_ends)),
    FOREIGN KEY (tenant_id, well_id) REFERENCES wells (tenant_id, id)
);
CREATE INDEX daily_production_tenant_day_idx ON daily_production (tenant_id, day);

-- Manual corrections (run tickets, third-party statements): append-only; the latest one of
-- a (well, day, quantity) takes precedence over the derived figure.
CREATE TABLE production_corrections (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       bigint NOT NULL,
    well_id         bigint NOT NULL,
    day             date NOT NULL,
    quantity        text NOT NULL
                    CHECK (quantity IN ('oil', 'gas', 'water', 'flared', 'vented', 'fuel')),
    volume          double precision NOT NULL CHECK (volume >= 0 AND volume < 'Infinity'),
    ticket_number   text NOT NULL DEFAULT '',
    author          text NOT NULL CHECK (length(trim(author)) > 0),
    note            text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, well_id) REFERENCES wells (tenant_id, id)
);
CREATE INDEX production_corrections_well_day_idx ON production_corrections (well_id, day);

-- Liquid hauled out of a tank (truck or LACT run ticket). The tank is a device (tank gauge)
-- linked to the well; `product` says which stock it came from.
CREATE TABLE haul_tickets (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       bigint NOT NULL,
    device_id       bigint NOT NULL,
    product         text NOT NULL CHECK (product IN ('oil', 'water')),
    time            timestamptz NOT NULL,
    volume_bbl      double precision NOT NULL CHECK (volume_bbl > 0 AND volume_bbl < 'Infinity'),
    ticket_number   text NOT NULL CHECK (length(trim(ticket_number)) > 0),
    hauler          text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id),
    UNIQUE (tenant_id, ticket_number)
);
CREATE INDEX haul_tickets_device_time_idx ON haul_tickets (device_id, time);

-- Strapping table of a tank that reports level only: level (in) → volume (bbl).
CREATE TABLE tank_strapping_points (
    tenant_id       bigint NOT NULL,
    device_id       bigint NOT NULL,
    level_in        double precision NOT NULL CHECK (level_in >= 0 AND level_in < 'Infinity'),
    volume_bbl      double precision NOT NULL CHECK (volume_bbl >= 0 AND volume_bbl < 'Infinity'),
    PRIMARY KEY (device_id, level_in),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id)
);

-- Emission sources of a site (optionally of one well). Activity comes from a meter series
-- (counter or rate) or, for flare/vent/combustion without a meter, from the well's daily
-- flared/vented/fuel figure; component and pneumatic counts are in the child tables.
CREATE TABLE emission_sources (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id           bigint NOT NULL,
    site_id             bigint NOT NULL,
    well_id             bigint,
    name                text NOT NULL CHECK (length(trim(name)) > 0),
    kind                text NOT NULL CHECK (kind IN ('combustion', 'flare', 'vent',
                            'equipment_leaks', 'pneumatics')),
    meter_series_id     bigint,
    -- Gas composition, mole fractions (sum 1 ± 0.01, checked by the analytics crate).
    ch4                 double precision NOT NULL DEFAULT 0 CHECK (ch4 BETWEEN 0 AND 1),
    c2h6                double precision NOT NULL DEFAULT 0 CHECK (c2h6 BETWEEN 0 AND 1),
    c3h8                double precision NOT NULL DEFAULT 0 CHECK (c3h8 BETWEEN 0 AND 1),
    c4h10               double precision NOT NULL DEFAULT 0 CHECK (c4h10 BETWEEN 0 AND 1),
    c5_plus             double precision NOT NULL DEFAULT 0 CHECK (c5_plus BETWEEN 0 AND 1),
    co2                 double precision NOT NULL DEFAULT 0 CHECK (co2 BETWEEN 0 AND 1),
    other               double precision NOT NULL DEFAULT 0 CHECK (other BETWEEN 0 AND 1),
    -- Measured HHV, MMBtu/scf (combustion Tier 2, flare N2O); NULL = regulatory default.
    hhv_mmbtu_per_scf   double precision CHECK (hhv_mmbtu_per_scf > 0 AND hhv_mmbtu_per_scf < 1),
    -- Flare: measured combustion efficiency (NULL = regulatory default), unlit flare.
    flare_efficiency    double precision CHECK (flare_efficiency BETWEEN 0 AND 1),
    flare_unlit         boolean NOT NULL DEFAULT false,
    -- Combustion: unit type, site-specific CH4 factor (kg/MMBtu).
    combustion_unit     text CHECK (combustion_unit IN ('heater', 'reciprocating_engine', 'gas_turbine')),
    ch4_kg_per_mmbtu    double precision CHECK (ch4_kg_per_mmbtu >= 0 AND ch4_kg_per_mmbtu < 'Infinity'),
    -- Equipment leaks: Table W-1A region.
    region              text NOT NULL DEFAULT 'western' CHECK (region IN ('eastern', 'western')),
    subpart_w_facility  boolean NOT NULL DEFAULT true,
    -- Service period (population sources count hours in service inside it).
    in_service_from     timestamptz,
    in_service_to       timestamptz CHECK (in_service_to IS NULL OR in_service_from IS NULL
                                           OR in_service_to > in_service_from),
    created_at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id),
    FOREIGN KEY (tenant_id, well_id) REFERENCES wells (tenant_id, id),
    FOREIGN KEY (tenant_id, meter_series_id) REFERENCES series (tenant_id, id),
    CHECK (kind IN ('equipment_leaks', 'pneumatics') OR meter_series_id IS NOT NULL
           OR well_id IS NOT NULL),
    CHECK (kind <> 'combustion' OR combustion_unit IS NOT NULL),
    UNIQUE (tenant_id, site_id, name),
    UNIQUE (tenant_id, id)
);

CREATE TABLE emission_source_components (
    tenant_id       bigint NOT NULL,
    source_id       bigint NOT NULL,
    equipment       text NOT NULL CHECK (equipment IN ('valve', 'connector', 'flange',
                        'open_ended_line', 'pressure_relief_valve', 'pump', 'other', 'wellhead',
                        'separator', 'meters_piping', 'compressor', 'dehydrator', 'heater',
                        'storage_vessel')),
    service         text NOT NULL CHECK (service IN ('gas', 'light_crude', 'heavy_crude', 'crude')),
    count           integer NOT NULL CHECK (count >= 0),
    PRIMARY KEY (source_id, equipment, service),
    FOREIGN KEY (tenant_id, source_id) REFERENCES emission_sources (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE emission_source_pneumatics (
    tenant_id       bigint NOT NULL,
    source_id       bigint NOT NULL,
    bleed           text NOT NULL CHECK (bleed IN ('continuous_high', 'intermittent',
                        'continuous_low', 'pump')),
    count           integer NOT NULL CHECK (count >= 0),
    PRIMARY KEY (source_id, bleed),
    FOREIGN KEY (tenant_id, source_id) REFERENCES emission_sources (tenant_id, id) ON DELETE CASCADE
);

-- Emissions of one source on one UTC day, mass per gas (kg). NULL masses with `error` set
-- when the calculation was refused (e.g. no factor for the year); `complete` is false when
-- the activity data has gaps or is unknown.
CREATE TABLE daily_emissions (
    tenant_id       bigint NOT NULL,
    source_id       bigint NOT NULL,
    day             date NOT NULL,
    -- Activity: gas volume (Mcf) for flare/vent/combustion, hours in service otherwise.
    activity        double precision,
    activity_unit   text NOT NULL CHECK (activity_unit IN ('Mcf', 'h')),
    activity_method text NOT NULL,
    complete        boolean NOT NULL,
    co2_kg          double precision CHECK (co2_kg >= 0),
    ch4_kg          double precision CHECK (ch4_kg >= 0),
    n2o_kg          double precision CHECK (n2o_kg >= 0),
    reporting_year  integer NOT NULL,
    calculation     text NOT NULL DEFAULT '',
    error           text,
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, day),
    CHECK ((co2_kg IS NULL) = (ch4_kg IS NULL) AND (ch4_kg IS NULL) = (n2o_kg IS NULL)),
    FOREIGN KEY (tenant_id, source_id) REFERENCES emission_sources (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX daily_emissions_tenant_day_idx ON daily_emissions (tenant_id, day);

-- Production job bookkeeping: batches received up to this time have been derived.
CREATE TABLE production_watermarks (
    tenant_id       bigint PRIMARY KEY REFERENCES tenants (id),
    received_through timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenant_regulatory', 'well_regulatory', 'daily_production',
                             'production_corrections', 'haul_tickets', 'tank_strapping_points',
                             'emission_sources', 'emission_source_components',
                             'emission_source_pneumatics', 'daily_emissions',
                             'production_watermarks']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = wellpulse_current_tenant())', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO wellpulse_tenant', t);
    END LOOP;
END
$$;
