//! The canonical metric vocabulary: the only names analytics, ESG reports and dashboards
//! know about.
//!
//! Every numeric tag of a profile maps to exactly one entry, and the tag's unit must be the
//! entry's unit, so the cloud can compare a Lufkin and a Weatherford controller without
//! knowing either register map. Names carry their unit as a suffix where one applies
//! (`tubing_pressure_psi`), so a name alone is unambiguous in SQL and in dashboards.
//!
//! Kinds tell consumers how to aggregate: a [`MetricKind::Gauge`] is averaged or sampled,
//! a [`MetricKind::Counter`] is a monotonic running total (differences give production for
//! a period; a decrease means a rollover or reset), a [`MetricKind::State`] is a code or a
//! boolean (0/1) that is never averaged.
//!
//! The list is append-only: a name, once shipped, keeps its unit and meaning forever.
//!
//! # Custom metrics
//!
//! A value that no canonical metric describes (a generic device's registers, a vendor
//! diagnostic) is a *custom metric*: a name in the separate `custom.` namespace
//! ([`CUSTOM_NAMESPACE`]), e.g. `custom.discharge_pressure`, with its own unit and
//! [`MetricKind`] declared by the profile. Custom metrics travel and are stored like
//! canonical ones, under their full `custom.<name>` name, but analytics never read them:
//! production, emissions and reports ask for canonical names only, so a custom metric
//! cannot stand in for one. [`parse_metric_name`] sorts a profile's or a request's name
//! into [`MetricName::Canonical`] or [`MetricName::Custom`]; [`check_custom_name`] and
//! [`check_unit`] are the rules a custom name and unit follow (the cloud applies them to
//! every birth it stores). A custom name never equals a canonical name
//! (`custom.tubing_pressure_psi` is refused): a reader must never have to wonder which of
//! two identically named series an analysis used.

/// How values of a metric behave over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A level or rate sampled at a point in time.
    Gauge,
    /// A monotonic running total.
    Counter,
    /// An enumerated code or a boolean (0/1).
    State,
}

impl MetricKind {
    /// Every kind, in code order.
    pub const ALL: [MetricKind; 3] = [MetricKind::Gauge, MetricKind::Counter, MetricKind::State];

    /// The kind's name in profiles, the API and the database: `gauge`, `counter`, `state`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Counter => "counter",
            MetricKind::State => "state",
        }
    }

    /// The kind of a name written by [`MetricKind::as_str`].
    pub fn parse(name: &str) -> Option<MetricKind> {
        MetricKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// The namespace prefix of custom (non-canonical) metric names.
pub const CUSTOM_NAMESPACE: &str = "custom.";
/// Longest custom name (after the namespace), in bytes.
pub const MAX_CUSTOM_NAME_LEN: usize = 64;
/// Longest unit of a custom metric, in bytes.
pub const MAX_UNIT_LEN: usize = 16;

/// A metric name sorted into its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricName<'a> {
    /// A name of the canonical vocabulary.
    Canonical(&'static MetricDef),
    /// `custom.<name>`: the part after the namespace, checked by [`check_custom_name`].
    Custom(&'a str),
}

/// Why a metric name is neither canonical nor a valid custom name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricNameError {
    /// A bare name that is not in the vocabulary.
    #[error("unknown canonical metric \"{name}\"{}", DidYouMean(*suggestion))]
    UnknownCanonical {
        /// The name.
        name: String,
        /// The closest vocabulary name, if one is close.
        suggestion: Option<&'static str>,
    },
    /// A `namespace.name` whose namespace is not `custom`.
    #[error(
        "unknown metric namespace \"{namespace}\" in \"{name}\": a metric is a canonical name or custom.<name>"
    )]
    UnknownNamespace {
        /// The whole name.
        name: String,
        /// The part before the first dot.
        namespace: String,
    },
    /// A custom name that breaks [`check_custom_name`].
    #[error("invalid custom metric \"{name}\": {reason}")]
    BadCustomName {
        /// The whole name.
        name: String,
        /// The rule it breaks.
        reason: String,
    },
}

/// Formats an optional suggestion as ` (did you mean "x"?)`.
pub(crate) struct DidYouMean(pub(crate) Option<&'static str>);

impl std::fmt::Display for DidYouMean {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(name) => write!(f, " (did you mean \"{name}\"?)"),
            None => Ok(()),
        }
    }
}

/// Sorts `name` into the canonical vocabulary or the `custom.` namespace.
pub fn parse_metric_name(name: &str) -> Result<MetricName<'_>, MetricNameError> {
    if let Some(custom) = name.strip_prefix(CUSTOM_NAMESPACE) {
        return check_custom_name(custom)
            .map(|()| MetricName::Custom(custom))
            .map_err(|reason| MetricNameError::BadCustomName {
                name: name.to_owned(),
                reason,
            });
    }
    if let Some((namespace, _)) = name.split_once('.') {
        return Err(MetricNameError::UnknownNamespace {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        });
    }
    lookup(name)
        .map(MetricName::Canonical)
        .ok_or_else(|| MetricNameError::UnknownCanonical {
            name: name.to_owned(),
            suggestion: nearest(name),
        })
}

/// The rules of the part after `custom.`: 1 to [`MAX_CUSTOM_NAME_LEN`] bytes of
/// snake_case (`[a-z0-9_]`, starting with a letter), and not a canonical name.
pub fn check_custom_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_CUSTOM_NAME_LEN {
        return Err(format!(
            "the name after \"{CUSTOM_NAMESPACE}\" must be 1 to {MAX_CUSTOM_NAME_LEN} bytes long"
        ));
    }
    let snake = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_';
    if !name.as_bytes()[0].is_ascii_lowercase() || !name.bytes().all(snake) {
        return Err(format!(
            "the name after \"{CUSTOM_NAMESPACE}\" must be snake_case ([a-z0-9_], starting with a letter)"
        ));
    }
    if lookup(name).is_some() {
        return Err(format!(
            "\"{name}\" is a canonical metric: use metric = \"{name}\" with its vocabulary unit (a custom name never shadows a canonical one)"
        ));
    }
    Ok(())
}

/// The rules of a custom metric's unit: 1 to [`MAX_UNIT_LEN`] bytes of ASCII letters,
/// digits and `% / . _ ^ -` (e.g. `psi`, `Mcf/d`, `%LEL`, `m^3`, `count`; `code` or `bool`
/// for states).
pub fn check_unit(unit: &str) -> Result<(), String> {
    if unit.is_empty() || unit.len() > MAX_UNIT_LEN {
        return Err(format!(
            "a custom metric's unit must be 1 to {MAX_UNIT_LEN} bytes long (use \"code\" or \"bool\" for states, \"count\" for counts)"
        ));
    }
    let allowed = |c: u8| c.is_ascii_alphanumeric() || b"%/._^-".contains(&c);
    if !unit.bytes().all(allowed) {
        return Err(format!(
            "unit \"{}\" may only hold ASCII letters, digits and % / . _ ^ -",
            unit.escape_debug()
        ));
    }
    Ok(())
}
/// Canonical metrics people's safety depends on (toxic and combustible gas, the detector's
/// own alarms and faults): the agent commits a frame holding one of them at once, however
/// sparse the site, so it reaches the cloud within a poll cycle.
pub const SAFETY_METRICS: &[&str] = &[
    "h2s_ppm",
    "h2s_alarm_low",
    "h2s_alarm_high",
    "lel_pct",
    "lel_alarm",
    "detector_fault",
];

/// Whether `name` is one of the [`SAFETY_METRICS`].
pub fn is_safety(name: &str) -> bool {
    SAFETY_METRICS.contains(&name)
}

/// One canonical metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// Canonical name (snake_case, unit suffix).
    pub name: &'static str,
    /// Engineering unit every tag carrying this metric must use.
    pub unit: &'static str,
    /// How the metric aggregates.
    pub kind: MetricKind,
    /// What the metric means, including code tables for states.
    pub description: &'static str,
}

const fn def(
    name: &'static str,
    unit: &'static str,
    kind: MetricKind,
    description: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        unit,
        kind,
        description,
    }
}

use MetricKind::{Counter, Gauge, State};

static METRICS: &[MetricDef] = &[
    // Wellhead and line pressures.
    def(
        "tubing_pressure_psi",
        "psi",
        Gauge,
        "Tubing (wellhead) pressure.",
    ),
    def(
        "casing_pressure_psi",
        "psi",
        Gauge,
        "Casing (annulus) pressure.",
    ),
    def(
        "line_pressure_psi",
        "psi",
        Gauge,
        "Flow line / sales line pressure.",
    ),
    // Gas measurement (flow computers).
    def(
        "static_pressure_psi",
        "psi",
        Gauge,
        "Meter run static pressure.",
    ),
    def(
        "differential_pressure_inh2o",
        "inH2O",
        Gauge,
        "Orifice differential pressure.",
    ),
    def(
        "flow_temperature_f",
        "degF",
        Gauge,
        "Gas flowing temperature at the meter.",
    ),
    def(
        "gas_rate_mcfd",
        "Mcf/d",
        Gauge,
        "Sales gas flow rate at base conditions.",
    ),
    def(
        "gas_volume_today_mcf",
        "Mcf",
        Gauge,
        "Gas volume of the current contract day (resets at contract hour).",
    ),
    def(
        "gas_volume_yesterday_mcf",
        "Mcf",
        Gauge,
        "Gas volume of the previous contract day.",
    ),
    def(
        "gas_volume_total_mcf",
        "Mcf",
        Counter,
        "Accumulated sales gas volume.",
    ),
    def(
        "flare_gas_rate_mcfd",
        "Mcf/d",
        Gauge,
        "Flare gas flow rate.",
    ),
    def(
        "flare_gas_mcf",
        "Mcf",
        Counter,
        "Accumulated flared gas volume.",
    ),
    def(
        "vent_gas_mcf",
        "Mcf",
        Counter,
        "Accumulated vented gas volume.",
    ),
    def(
        "fuel_gas_mcf",
        "Mcf",
        Counter,
        "Accumulated fuel gas volume.",
    ),
    // Liquids and tanks.
    def("oil_rate_bpd", "bbl/d", Gauge, "Oil production rate."),
    def("water_rate_bpd", "bbl/d", Gauge, "Produced water rate."),
    def(
        "oil_level_in",
        "in",
        Gauge,
        "Oil (top of fluid) level in a tank.",
    ),
    def(
        "water_level_in",
        "in",
        Gauge,
        "Water (interface) level in a tank.",
    ),
    def("oil_volume_bbl", "bbl", Gauge, "Oil volume in a tank."),
    def("water_volume_bbl", "bbl", Gauge, "Water volume in a tank."),
    def(
        "tank_temperature_f",
        "degF",
        Gauge,
        "Tank fluid temperature.",
    ),
    def(
        "tank_high_level",
        "bool",
        State,
        "High-level switch or alarm (1 = high).",
    ),
    // Rod pump.
    def(
        "pump_fillage_pct",
        "%",
        Gauge,
        "Downhole pump fillage of the last stroke.",
    ),
    def("strokes_per_minute", "spm", Gauge, "Pumping speed."),
    def(
        "stroke_count_total",
        "count",
        Counter,
        "Accumulated pump strokes.",
    ),
    def(
        "rod_load_peak_lbf",
        "lbf",
        Gauge,
        "Peak polished rod load of the last stroke.",
    ),
    def(
        "rod_load_min_lbf",
        "lbf",
        Gauge,
        "Minimum polished rod load of the last stroke.",
    ),
    def(
        "pump_runtime_today_hr",
        "h",
        Gauge,
        "Pump run time of the current day.",
    ),
    def(
        "pump_state",
        "code",
        State,
        "Pump state: 0 stopped, 1 running, 2 pumped-off idle, 3 fault.",
    ),
    // Motors and drives.
    def("motor_current_a", "A", Gauge, "Motor current."),
    def("motor_voltage_v", "V", Gauge, "Motor voltage."),
    def("motor_frequency_hz", "Hz", Gauge, "Drive output frequency."),
    def(
        "motor_temperature_f",
        "degF",
        Gauge,
        "Motor winding temperature.",
    ),
    // ESP downhole gauge.
    def(
        "pump_intake_pressure_psi",
        "psi",
        Gauge,
        "Pump intake pressure.",
    ),
    def(
        "pump_discharge_pressure_psi",
        "psi",
        Gauge,
        "Pump discharge pressure.",
    ),
    def("vibration_g", "g", Gauge, "Vibration level."),
    // Plunger lift.
    def(
        "plunger_arrivals_total",
        "count",
        Counter,
        "Accumulated plunger arrivals.",
    ),
    def(
        "plunger_travel_time_s",
        "s",
        Gauge,
        "Plunger travel time of the last cycle.",
    ),
    def(
        "valve_open",
        "bool",
        State,
        "Motor valve open (1) or closed (0).",
    ),
    // Gas detection and power.
    def("h2s_ppm", "ppm", Gauge, "Hydrogen sulphide concentration."),
    def(
        "lel_pct",
        "%LEL",
        Gauge,
        "Combustible gas, percent of lower explosive limit.",
    ),
    def(
        "detector_fault",
        "bool",
        State,
        "Detector fault (1 = fault).",
    ),
    def("battery_voltage_v", "V", Gauge, "Battery voltage."),
    // Additions beyond the original contract list (append only). Each profile may use a
    // metric once, so every distinct quantity a device reports needs its own name.
    //
    // Gas detection.
    def(
        "h2s_alarm_low",
        "bool",
        State,
        "H2S low (warning) alarm active.",
    ),
    def(
        "h2s_alarm_high",
        "bool",
        State,
        "H2S high (evacuate) alarm active.",
    ),
    def("lel_alarm", "bool", State, "Combustible gas alarm active."),
    def(
        "detector_state",
        "code",
        State,
        "Gas detector state: 0 normal, 1 warm-up, 2 calibration, 3 fault, 4 inhibit.",
    ),
    def(
        "h2s_alarm_low_setpoint_ppm",
        "ppm",
        Gauge,
        "H2S low alarm threshold.",
    ),
    def(
        "h2s_alarm_high_setpoint_ppm",
        "ppm",
        Gauge,
        "H2S high alarm threshold.",
    ),
    def(
        "alarm_output_on",
        "bool",
        State,
        "Alarm relay / horn / beacon output energised.",
    ),
    def(
        "gas_alarm_count_total",
        "count",
        Counter,
        "Accumulated gas alarm events.",
    ),
    def(
        "sensor_life_pct",
        "%",
        Gauge,
        "Remaining life of the (primary) gas sensor.",
    ),
    def(
        "calibration_age_d",
        "d",
        Gauge,
        "Days since the last calibration.",
    ),
    // Site power and electronics.
    def(
        "enclosure_temperature_f",
        "degF",
        Gauge,
        "Electronics enclosure temperature.",
    ),
    def(
        "charger_voltage_v",
        "V",
        Gauge,
        "Solar panel / charger voltage.",
    ),
    def(
        "battery_low_alarm",
        "bool",
        State,
        "Battery below its low-voltage threshold.",
    ),
    // Rod pump controller.
    def(
        "polished_rod_power_hp",
        "hp",
        Gauge,
        "Polished rod horsepower of the last stroke.",
    ),
    def(
        "fluid_level_above_pump_ft",
        "ft",
        Gauge,
        "Fluid level above the pump, calculated from the downhole card.",
    ),
    def(
        "gearbox_load_pct",
        "%",
        Gauge,
        "Peak gearbox torque, percent of rating.",
    ),
    def(
        "structure_load_pct",
        "%",
        Gauge,
        "Peak structure load, percent of rating.",
    ),
    def(
        "pump_net_stroke_in",
        "in",
        Gauge,
        "Effective downhole plunger stroke.",
    ),
    def(
        "pump_runtime_yesterday_hr",
        "h",
        Gauge,
        "Pump run time of the previous day.",
    ),
    def(
        "pump_runtime_total_hr",
        "h",
        Counter,
        "Accumulated pump run time.",
    ),
    def(
        "pump_cycles_today",
        "count",
        Gauge,
        "Pump-off / start cycles of the current day.",
    ),
    def(
        "fluid_production_today_bbl",
        "bbl",
        Gauge,
        "Inferred gross fluid production of the current day (pump displacement).",
    ),
    def(
        "fluid_production_yesterday_bbl",
        "bbl",
        Gauge,
        "Inferred gross fluid production of the previous day.",
    ),
    def(
        "strokes_per_minute_setpoint",
        "spm",
        Gauge,
        "Pumping speed setpoint (VSD).",
    ),
    def(
        "pump_fillage_setpoint_pct",
        "%",
        Gauge,
        "Pump-off detection fillage setpoint.",
    ),
    def(
        "pump_idle_time_setpoint_min",
        "min",
        Gauge,
        "Idle time after a pump-off.",
    ),
    def(
        "rod_load_high_limit_lbf",
        "lbf",
        Gauge,
        "High polished rod load shutdown limit.",
    ),
    def(
        "rod_load_low_limit_lbf",
        "lbf",
        Gauge,
        "Low polished rod load shutdown limit.",
    ),
    def(
        "rod_load_high_alarm",
        "bool",
        State,
        "Peak load above the high load limit.",
    ),
    def(
        "rod_load_low_alarm",
        "bool",
        State,
        "Minimum load below the low load limit (parted rods, unseated pump).",
    ),
    def(
        "vibration_switch_trip",
        "bool",
        State,
        "Pumping unit vibration switch tripped.",
    ),
    def(
        "pump_run_command",
        "bool",
        State,
        "Run (1) / stop (0) command to the pump or drive.",
    ),
    def(
        "control_mode_auto",
        "bool",
        State,
        "Hand-off-auto switch in auto.",
    ),
    def(
        "motor_running",
        "bool",
        State,
        "Motor contactor / drive run feedback.",
    ),
    // Motors and drives.
    def("motor_speed_rpm", "rpm", Gauge, "Motor shaft speed."),
    def("motor_power_kw", "kW", Gauge, "Motor input power."),
    def(
        "motor_energy_kwh",
        "kWh",
        Counter,
        "Accumulated motor energy.",
    ),
    def(
        "motor_starts_total",
        "count",
        Counter,
        "Accumulated motor starts.",
    ),
    def(
        "motor_overload_alarm",
        "bool",
        State,
        "Motor overload alarm or trip.",
    ),
    def(
        "underload_alarm",
        "bool",
        State,
        "Motor underload alarm or trip (pump off, gas lock).",
    ),
    def(
        "current_unbalance_pct",
        "%",
        Gauge,
        "Motor current unbalance between phases.",
    ),
    def(
        "drive_fault_code",
        "code",
        State,
        "Last drive fault code (0 = none; vendor table).",
    ),
    def(
        "motor_frequency_setpoint_hz",
        "Hz",
        Gauge,
        "Drive speed setpoint.",
    ),
    def(
        "underload_setpoint_pct",
        "%",
        Gauge,
        "Underload trip, percent of motor full-load amps.",
    ),
    // Wellhead.
    def(
        "wellhead_temperature_f",
        "degF",
        Gauge,
        "Flowing wellhead temperature.",
    ),
    // ESP downhole gauge.
    def(
        "pump_intake_temperature_f",
        "degF",
        Gauge,
        "Pump intake (well fluid) temperature.",
    ),
    def(
        "pump_intake_pressure_low_limit_psi",
        "psi",
        Gauge,
        "Low intake pressure trip setpoint.",
    ),
    def(
        "gauge_comm_fault",
        "bool",
        State,
        "Downhole gauge communication lost.",
    ),
    // Gas measurement.
    def(
        "gas_energy_rate_mmbtud",
        "MMBtu/d",
        Gauge,
        "Energy flow rate of the sales gas.",
    ),
    def(
        "gas_energy_today_mmbtu",
        "MMBtu",
        Gauge,
        "Energy of the current contract day.",
    ),
    def(
        "gas_energy_total_mmbtu",
        "MMBtu",
        Counter,
        "Accumulated sales gas energy.",
    ),
    def(
        "flow_time_today_min",
        "min",
        Gauge,
        "Minutes with flow above cutoff today.",
    ),
    def(
        "gas_heating_value_btu_scf",
        "Btu/scf",
        Gauge,
        "Gross heating value of the gas.",
    ),
    def(
        "gas_specific_gravity",
        "SG",
        Gauge,
        "Gas specific gravity (air = 1).",
    ),
    def(
        "gas_co2_mol_pct",
        "mol%",
        Gauge,
        "Carbon dioxide in the gas.",
    ),
    def("gas_n2_mol_pct", "mol%", Gauge, "Nitrogen in the gas."),
    def("orifice_diameter_in", "in", Gauge, "Orifice plate bore."),
    def(
        "meter_tube_diameter_in",
        "in",
        Gauge,
        "Meter tube inside diameter.",
    ),
    def(
        "atmospheric_pressure_psi",
        "psi",
        Gauge,
        "Atmospheric pressure used for psia.",
    ),
    def(
        "dp_low_flow_cutoff_inh2o",
        "inH2O",
        Gauge,
        "Differential pressure zero-flow cutoff.",
    ),
    def(
        "dp_high_alarm",
        "bool",
        State,
        "Differential pressure above the transmitter range.",
    ),
    def(
        "contract_hour",
        "h",
        State,
        "Hour of day at which the contract day starts (0-23).",
    ),
    def("fuel_gas_rate_mcfd", "Mcf/d", Gauge, "Fuel gas flow rate."),
    def("vent_gas_rate_mcfd", "Mcf/d", Gauge, "Vent gas flow rate."),
    // Plunger lift.
    def(
        "plunger_cycle_state",
        "code",
        State,
        "Plunger cycle: 0 shut-in, 1 rising (valve open), 2 afterflow, 3 mandatory shut-in, 4 fault.",
    ),
    def(
        "plunger_arrival_sensor",
        "bool",
        State,
        "Arrival sensor (lubricator) active.",
    ),
    def(
        "plunger_non_arrival_alarm",
        "bool",
        State,
        "Plunger missed its last arrival.",
    ),
    def(
        "plunger_cycles_today",
        "count",
        Gauge,
        "Plunger cycles of the current day.",
    ),
    def(
        "plunger_misses_today",
        "count",
        Gauge,
        "Missed arrivals of the current day.",
    ),
    def(
        "plunger_open_time_setpoint_min",
        "min",
        Gauge,
        "Maximum valve-open time.",
    ),
    def(
        "plunger_close_time_setpoint_min",
        "min",
        Gauge,
        "Shut-in (close) time.",
    ),
    def(
        "plunger_afterflow_setpoint_min",
        "min",
        Gauge,
        "Afterflow time after arrival.",
    ),
    def(
        "casing_pressure_open_setpoint_psi",
        "psi",
        Gauge,
        "Casing pressure at which the valve opens.",
    ),
    // Tanks.
    def(
        "fluid_level_rate_in_hr",
        "in/h",
        Gauge,
        "Rate of change of the tank level.",
    ),
    def(
        "tank_level_alarm",
        "bool",
        State,
        "Gauged level above the high level setpoint.",
    ),
    def(
        "tank_high_level_setpoint_in",
        "in",
        Gauge,
        "High level alarm setpoint.",
    ),
    def(
        "gauge_fault",
        "bool",
        State,
        "Level gauge fault (lost echo, float stuck).",
    ),
];

/// The definition of a canonical metric, if `name` is one. A hash lookup: the cloud asks
/// it for every sample it scores.
pub fn lookup(name: &str) -> Option<&'static MetricDef> {
    static BY_NAME: std::sync::OnceLock<
        std::collections::HashMap<&'static str, &'static MetricDef>,
    > = std::sync::OnceLock::new();
    BY_NAME
        .get_or_init(|| METRICS.iter().map(|m| (m.name, m)).collect())
        .get(name)
        .copied()
}

/// Every canonical metric, in vocabulary order.
pub fn all() -> &'static [MetricDef] {
    METRICS
}

/// The canonical name closest to `name` (edit distance), if it is close enough to be a
/// plausible typo: within a third of the name's length.
pub fn nearest(name: &str) -> Option<&'static str> {
    let (best, distance) = METRICS
        .iter()
        .map(|m| (m.name, edit_distance(name, m.name)))
        .min_by_key(|(_, d)| *d)?;
    (distance <= name.len().max(3) / 3).then_some(best)
}

/// Levenshtein distance over bytes (names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_with_units() {
        for (i, m) in METRICS.iter().enumerate() {
            assert!(
                m.name
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
                "{}",
                m.name
            );
            assert!(
                !m.unit.is_empty() && !m.description.is_empty(),
                "{}",
                m.name
            );
            assert!(
                METRICS[i + 1..].iter().all(|o| o.name != m.name),
                "duplicate {}",
                m.name
            );
        }
    }

    #[test]
    fn lookup_finds_known_and_rejects_unknown() {
        assert_eq!(lookup("h2s_ppm").map(|m| m.unit), Some("ppm"));
        assert_eq!(
            lookup("gas_volume_total_mcf").map(|m| m.kind),
            Some(MetricKind::Counter)
        );
        assert!(lookup("H2S_ppm").is_none());
    }

    #[test]
    fn nearest_suggests_typos_only() {
        assert_eq!(nearest("tubing_presure_psi"), Some("tubing_pressure_psi"));
        assert_eq!(nearest("casing_pressure"), Some("casing_pressure_psi"));
        assert_eq!(nearest("xyz"), None);
        assert_eq!(nearest("completely_unrelated_thing"), None);
    }

    #[test]
    fn names_sort_into_namespaces() {
        assert!(matches!(
            parse_metric_name("h2s_ppm"),
            Ok(MetricName::Canonical(def)) if def.unit == "ppm"
        ));
        assert_eq!(
            parse_metric_name("custom.discharge_pressure"),
            Ok(MetricName::Custom("discharge_pressure"))
        );
        let e = parse_metric_name("vendor.discharge")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown metric namespace \"vendor\""), "{e}");
        let e = parse_metric_name("custom.h2s_ppm").unwrap_err().to_string();
        assert!(e.contains("never shadows a canonical one"), "{e}");
        for bad in [
            "custom.",
            "custom.Flow",
            "custom.9lives",
            "custom.a-b",
            "custom.a.b",
        ] {
            assert!(
                matches!(
                    parse_metric_name(bad),
                    Err(MetricNameError::BadCustomName { .. })
                ),
                "{bad}"
            );
        }
        let long = format!("custom.{}", "a".repeat(MAX_CUSTOM_NAME_LEN + 1));
        assert!(parse_metric_name(&long).is_err());
        assert!(matches!(
            parse_metric_name("tubing_presure_psi"),
            Err(MetricNameError::UnknownCanonical {
                suggestion: Some("tubing_pressure_psi"),
                ..
            })
        ));
    }

    #[test]
    fn units_and_kinds() {
        for good in ["psi", "Mcf/d", "%LEL", "m^3", "count", "mol%", "in.H2O"] {
            assert_eq!(check_unit(good), Ok(()), "{good}");
        }
        for bad in ["", "deg C", "°F", "psi\n", "abcdefghijklmnopq"] {
            assert!(check_unit(bad).is_err(), "{bad:?}");
        }
        for kind in MetricKind::ALL {
            assert_eq!(MetricKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(MetricKind::parse("rate"), None);
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
