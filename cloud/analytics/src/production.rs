//! Daily production per well, derived from telemetry by canonical metric.
//!
//! # What
//! [`derive_day`] turns one well-day of telemetry (good-quality readings in engineering
//! units, grouped by canonical metric name from the shared vocabulary) plus the run tickets
//! and manual corrections of that day into six figures: oil, gas, water (bbl / Mcf) and
//! flared, vented, fuel gas (Mcf). [`monthly_totals`] rolls days up for the regulatory
//! reports.
//!
//! # Methods (recorded on every figure as [`Method`])
//! * **Tank gauge** (oil, water): `production = closing stock − opening stock + hauled`,
//!   summed over every tank of the well. Stock comes from `oil_volume_bbl` /
//!   `water_volume_bbl`, or from `oil_level_in` / `water_level_in` through the tank's
//!   strapping table ([`TankStrapping`]). Hauled volume is the sum of the run tickets
//!   timestamped inside the day. Stock at a day boundary is interpolated between the two
//!   readings around it when they are at most `max_gap_ms` apart, else held from the nearest
//!   reading within `max_gap_ms`, else unknown (the figure is then missing, never zero).
//! * **Meter total** (gas, flared, vented, fuel): delta of a running-total counter
//!   (`gas_volume_total_mcf`, `flare_gas_mcf`, `vent_gas_mcf`, `fuel_gas_mcf`). Each pair
//!   of consecutive readings contributes its increment, apportioned linearly to the part of
//!   the interval inside the day. A decrease is a *rollover* when the counter has a
//!   configured modulus and the previous value lies in its top 10 % (increment
//!   `modulus − previous + next`), otherwise a *reset* to zero (increment `next`). Both are
//!   reported as [`CounterEvent`]s.
//! * **Flow-computer daily** (gas): the `gas_volume_yesterday_mcf` register, read at least
//!   `yesterday_settle_ms` after the end of the day (the flow computer latches it at its
//!   contract hour, which the day window must match).
//! * **Rate integration** (gas, oil, water, flared): trapezoidal integral of a rate gauge
//!   (`gas_rate_mcfd`, `oil_rate_bpd`, `water_rate_bpd`, `flare_gas_rate_mcfd`) over the
//!   intervals between readings no more than `max_gap_ms` apart. Longer intervals are gaps:
//!   they are not integrated, not extrapolated, and the figure reports the shortfall.
//! * **Manual correction**: an operator-entered value (e.g. from a run ticket or a third
//!   party meter statement) takes precedence; the telemetry-derived figure is kept beside it
//!   in [`DailyFigure::derived`].
//!
//! For each quantity the methods are tried in the order above; the first one with complete
//! coverage wins, otherwise the one covering most of the day (ties to the earlier method).
//!
//! # Completeness
//! Every figure carries a [`Coverage`]: the part of the day for which its value is
//! determined, and the gaps. A figure with gaps is *flagged*, and a figure with no data at
//! all has `value: None` and [`Method::Missing`]: gaps are never silently zero. For meter
//! totals an interval longer than `max_gap_ms` still counts as covered when it lies wholly
//! inside the day and the counter did not reset in it (the counter kept counting); across a
//! day boundary the split of such an interval is an estimate and is flagged as a gap.
//!
//! # Invariants
//! * Readings of a series are used in time order (unsorted input is sorted, and reported).
//! * Windows are half-open `[start_ms, end_ms)`; the caller chooses them (e.g. the gas day
//!   from the contract hour in the lease's local time).

use crate::units::MS_PER_DAY;
use std::collections::BTreeSet;

/// One good-quality reading in engineering units (bad/stale samples are dropped upstream).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// UTC milliseconds.
    pub ts_ms: i64,
    /// Engineering value (`raw × scale + offset`) in the metric's canonical unit.
    pub value: f64,
}

/// A time series of one canonical metric from one source (device or tank).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Canonical metric name, e.g. `gas_volume_total_mcf`.
    pub metric: String,
    /// Device or tank identifier; tanks are matched to [`TankStrapping::source`].
    pub source: String,
    /// Readings covering the day plus a margin on both sides (at least `max_gap_ms`, and
    /// for `gas_volume_yesterday_mcf` up to a day after the window).
    pub readings: Vec<Reading>,
}

/// The quantities derived per well-day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quantity {
    /// Oil or condensate, bbl.
    Oil,
    /// Gas produced (measured at the wellhead meter), Mcf.
    Gas,
    /// Produced water, bbl.
    Water,
    /// Gas sent to flare, Mcf.
    Flared,
    /// Gas vented, Mcf.
    Vented,
    /// Gas used as lease fuel, Mcf.
    Fuel,
}

impl Quantity {
    /// All quantities in report order.
    pub const ALL: [Quantity; 6] = [
        Quantity::Oil,
        Quantity::Gas,
        Quantity::Water,
        Quantity::Flared,
        Quantity::Vented,
        Quantity::Fuel,
    ];

    /// Unit symbol of the quantity.
    pub fn unit(self) -> &'static str {
        match self {
            Quantity::Oil | Quantity::Water => "bbl",
            _ => "Mcf",
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Quantity::Oil => "oil",
            Quantity::Gas => "gas",
            Quantity::Water => "water",
            Quantity::Flared => "flared",
            Quantity::Vented => "vented",
            Quantity::Fuel => "fuel",
        }
    }
}

/// How a figure was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// Closing − opening tank stock + hauled (run tickets).
    TankGauge,
    /// Delta of a running-total counter.
    MeterTotal,
    /// Flow computer's latched previous-day volume register.
    FlowComputerDaily,
    /// Trapezoidal integral of a rate gauge.
    RateIntegration,
    /// Operator-entered value; takes precedence over telemetry.
    ManualCorrection,
    /// No data: the value is unknown.
    Missing,
    /// Imported from the tenant's records or a regulator's publication (history import);
    /// never derived here.
    Import,
}

impl Method {
    /// Stable name for exports.
    pub fn name(self) -> &'static str {
        match self {
            Method::TankGauge => "tank_gauge",
            Method::MeterTotal => "meter_total",
            Method::FlowComputerDaily => "flow_computer_daily",
            Method::RateIntegration => "rate_integration",
            Method::ManualCorrection => "manual_correction",
            Method::Missing => "missing",
            Method::Import => "import",
        }
    }
}

/// A half-open time window `[start_ms, end_ms)`, normally one production day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayWindow {
    /// Inclusive start, UTC ms.
    pub start_ms: i64,
    /// Exclusive end, UTC ms.
    pub end_ms: i64,
}

impl DayWindow {
    /// Length in ms.
    pub fn len_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

/// A part of the day for which a figure has no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Inclusive start, UTC ms.
    pub start_ms: i64,
    /// Exclusive end, UTC ms.
    pub end_ms: i64,
}

/// Which part of the day a figure's value is determined for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Length of the day, ms.
    pub window_ms: i64,
    /// Gaps, sorted and non-overlapping.
    pub gaps: Vec<Gap>,
}

impl Coverage {
    fn none(window: DayWindow) -> Self {
        Coverage {
            window_ms: window.len_ms(),
            gaps: vec![Gap {
                start_ms: window.start_ms,
                end_ms: window.end_ms,
            }],
        }
    }

    /// Covered time, ms.
    pub fn covered_ms(&self) -> i64 {
        self.window_ms - self.gaps.iter().map(|g| g.end_ms - g.start_ms).sum::<i64>()
    }

    /// Covered fraction of the day, 0..=1.
    pub fn fraction(&self) -> f64 {
        if self.window_ms <= 0 {
            return 0.0;
        }
        self.covered_ms() as f64 / self.window_ms as f64
    }

    /// True when the whole day is covered.
    pub fn is_complete(&self) -> bool {
        self.gaps.is_empty()
    }
}

/// A counter discontinuity seen while computing a meter-total delta.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterEvent {
    /// Source (device) of the counter.
    pub source: String,
    /// Timestamp of the first reading after the discontinuity.
    pub ts_ms: i64,
    /// What happened.
    pub kind: CounterEventKind,
}

/// Kind of counter discontinuity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterEventKind {
    /// The counter wrapped at its configured modulus.
    Rollover,
    /// The counter restarted from zero (device reset or replacement).
    Reset,
}

/// One derived daily figure with its provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyFigure {
    /// What this figure measures.
    pub quantity: Quantity,
    /// Volume in the quantity's unit; `None` when unknown (never a silent zero).
    pub value: Option<f64>,
    /// How the value was obtained.
    pub method: Method,
    /// Which part of the day the value covers.
    pub coverage: Coverage,
    /// Counter rollovers and resets used in the value.
    pub counter_events: Vec<CounterEvent>,
    /// For [`Method::ManualCorrection`]: the reference of the correction (ticket number…).
    pub correction_reference: Option<String>,
    /// For [`Method::ManualCorrection`]: the telemetry-derived figure kept beside it.
    pub derived: Option<Box<DailyFigure>>,
}

impl DailyFigure {
    fn missing(quantity: Quantity, window: DayWindow) -> Self {
        DailyFigure {
            quantity,
            value: None,
            method: Method::Missing,
            coverage: Coverage::none(window),
            counter_events: Vec::new(),
            correction_reference: None,
            derived: None,
        }
    }

    /// True when the value is known for the whole day.
    pub fn is_complete(&self) -> bool {
        self.value.is_some() && self.coverage.is_complete()
    }
}

/// A haul (run) ticket: liquid taken out of the well's tanks by truck or LACT.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTicket {
    /// Time of the haul, UTC ms.
    pub ts_ms: i64,
    /// [`Quantity::Oil`] or [`Quantity::Water`].
    pub quantity: Quantity,
    /// Net volume hauled, bbl.
    pub volume_bbl: f64,
    /// Ticket number, for audit.
    pub ticket: String,
}

/// An operator-entered daily value that overrides the derived one.
#[derive(Debug, Clone, PartialEq)]
pub struct ManualCorrection {
    /// Quantity corrected.
    pub quantity: Quantity,
    /// Corrected daily volume in the quantity's unit.
    pub value: f64,
    /// Reference (ticket, statement, user note) recorded on the figure.
    pub reference: String,
}

/// Tank strapping table: level (in) to volume (bbl), linear between points.
#[derive(Debug, Clone, PartialEq)]
pub struct TankStrapping {
    /// Tank (device) identifier, matching [`Series::source`].
    pub source: String,
    /// `(level_in, volume_bbl)` points with strictly increasing level.
    pub points: Vec<(f64, f64)>,
}

impl TankStrapping {
    /// Volume at `level_in`, interpolated; `None` outside the table.
    pub fn volume_bbl(&self, level_in: f64) -> Option<f64> {
        let pts = &self.points;
        let i = pts.partition_point(|p| p.0 < level_in);
        match i {
            _ if pts.is_empty() => None,
            0 if pts[0].0 == level_in => Some(pts[0].1),
            0 => None,
            _ if i == pts.len() => None,
            _ => {
                let (l0, v0) = pts[i - 1];
                let (l1, v1) = pts[i];
                Some(v0 + (v1 - v0) * (level_in - l0) / (l1 - l0))
            }
        }
    }
}

/// Counter properties of one canonical counter metric.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterSpec {
    /// Canonical metric name.
    pub metric: String,
    /// Value at which the counter wraps to zero (engineering units), if it wraps.
    pub rollover_at: f64,
}

/// Parameters of the derivation.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivationConfig {
    /// Longest spacing between readings that still counts as continuous data, ms. Set it
    /// at least to the agent's longest report interval (deadband heartbeat).
    pub max_gap_ms: i64,
    /// Delay after the day's end before `gas_volume_yesterday_mcf` holds the day, ms.
    pub yesterday_settle_ms: i64,
    /// Tank strapping tables, for tanks reporting level only.
    pub strappings: Vec<TankStrapping>,
    /// Counters that wrap at a known modulus.
    pub counters: Vec<CounterSpec>,
}

impl Default for DerivationConfig {
    fn default() -> Self {
        DerivationConfig {
            max_gap_ms: 30 * 60 * 1000,
            yesterday_settle_ms: 5 * 60 * 1000,
            strappings: Vec::new(),
            counters: Vec::new(),
        }
    }
}

/// Everything known about one well-day.
#[derive(Debug, Clone, PartialEq)]
pub struct WellDayInput {
    /// The production day.
    pub window: DayWindow,
    /// Telemetry by canonical metric (several series may share a metric: one per tank).
    pub series: Vec<Series>,
    /// Run tickets; only those inside the window are used.
    pub tickets: Vec<RunTicket>,
    /// Manual corrections for this day.
    pub corrections: Vec<ManualCorrection>,
}

/// A problem met while deriving, that did not stop the derivation.
#[derive(Debug, Clone, PartialEq)]
pub enum DerivationIssue {
    /// A level series has no strapping table; it was ignored.
    LevelWithoutStrapping {
        /// Tank identifier.
        source: String,
    },
    /// A level reading fell outside the strapping table; it was ignored.
    LevelOutsideStrapping {
        /// Tank identifier.
        source: String,
        /// Reading time.
        ts_ms: i64,
    },
    /// Readings were out of time order and were sorted.
    UnsortedReadings {
        /// Metric of the series.
        metric: String,
        /// Source of the series.
        source: String,
    },
    /// A non-finite reading was dropped.
    NonFiniteReading {
        /// Metric of the series.
        metric: String,
        /// Source of the series.
        source: String,
        /// Reading time.
        ts_ms: i64,
    },
    /// More than one correction for the same quantity; the last one was used.
    DuplicateCorrection {
        /// Quantity corrected twice.
        quantity: Quantity,
    },
}

/// The six daily figures of one well.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyProduction {
    /// The production day.
    pub window: DayWindow,
    /// Oil, bbl.
    pub oil: DailyFigure,
    /// Gas, Mcf.
    pub gas: DailyFigure,
    /// Water, bbl.
    pub water: DailyFigure,
    /// Flared gas, Mcf.
    pub flared: DailyFigure,
    /// Vented gas, Mcf.
    pub vented: DailyFigure,
    /// Fuel gas, Mcf.
    pub fuel: DailyFigure,
    /// Non-fatal problems met while deriving.
    pub issues: Vec<DerivationIssue>,
}

impl DailyProduction {
    /// The figure of a quantity.
    pub fn figure(&self, quantity: Quantity) -> &DailyFigure {
        match quantity {
            Quantity::Oil => &self.oil,
            Quantity::Gas => &self.gas,
            Quantity::Water => &self.water,
            Quantity::Flared => &self.flared,
            Quantity::Vented => &self.vented,
            Quantity::Fuel => &self.fuel,
        }
    }
}

/// A candidate method for a quantity, in priority order.
#[derive(Debug, Clone, Copy)]
enum Source {
    Tank {
        volume_metric: &'static str,
        level_metric: &'static str,
    },
    Counter(&'static str),
    Yesterday(&'static str),
    Rate(&'static str),
}

fn sources(quantity: Quantity) -> &'static [Source] {
    const OIL: &[Source] = &[
        Source::Tank {
            volume_metric: "oil_volume_bbl",
            level_metric: "oil_level_in",
        },
        Source::Rate("oil_rate_bpd"),
    ];
    const GAS: &[Source] = &[
        Source::Counter("gas_volume_total_mcf"),
        Source::Yesterday("gas_volume_yesterday_mcf"),
        Source::Rate("gas_rate_mcfd"),
    ];
    const WATER: &[Source] = &[
        Source::Tank {
            volume_metric: "water_volume_bbl",
            level_metric: "water_level_in",
        },
        Source::Rate("water_rate_bpd"),
    ];
    const FLARED: &[Source] = &[
        Source::Counter("flare_gas_mcf"),
        Source::Rate("flare_gas_rate_mcfd"),
    ];
    const VENTED: &[Source] = &[Source::Counter("vent_gas_mcf")];
    const FUEL: &[Source] = &[Source::Counter("fuel_gas_mcf")];
    match quantity {
        Quantity::Oil => OIL,
        Quantity::Gas => GAS,
        Quantity::Water => WATER,
        Quantity::Flared => FLARED,
        Quantity::Vented => VENTED,
        Quantity::Fuel => FUEL,
    }
}

/// Derives the six daily figures of one well-day.
pub fn derive_day(input: &WellDayInput, config: &DerivationConfig) -> DailyProduction {
    let mut issues = Vec::new();
    let series = clean_series(&input.series, &mut issues);
    let mut figure = |q: Quantity| {
        let derived = derive_quantity(q, input, &series, config, &mut issues);
        apply_correction(derived, &input.corrections, &mut issues)
    };
    let oil = figure(Quantity::Oil);
    let gas = figure(Quantity::Gas);
    let water = figure(Quantity::Water);
    let flared = figure(Quantity::Flared);
    let vented = figure(Quantity::Vented);
    let fuel = figure(Quantity::Fuel);
    DailyProduction {
        window: input.window,
        oil,
        gas,
        water,
        flared,
        vented,
        fuel,
        issues,
    }
}

/// Drops non-finite readings and sorts series that are out of order (both reported).
fn clean_series(series: &[Series], issues: &mut Vec<DerivationIssue>) -> Vec<Series> {
    series
        .iter()
        .map(|s| {
            let mut readings: Vec<Reading> = Vec::with_capacity(s.readings.len());
            for r in &s.readings {
                if r.value.is_finite() {
                    readings.push(*r);
                } else {
                    issues.push(DerivationIssue::NonFiniteReading {
                        metric: s.metric.clone(),
                        source: s.source.clone(),
                        ts_ms: r.ts_ms,
                    });
                }
            }
            if !readings.is_sorted_by_key(|r| r.ts_ms) {
                readings.sort_by_key(|r| r.ts_ms);
                issues.push(DerivationIssue::UnsortedReadings {
                    metric: s.metric.clone(),
                    source: s.source.clone(),
                });
            }
            Series {
                metric: s.metric.clone(),
                source: s.source.clone(),
                readings,
            }
        })
        .collect()
}

fn derive_quantity(
    quantity: Quantity,
    input: &WellDayInput,
    series: &[Series],
    config: &DerivationConfig,
    issues: &mut Vec<DerivationIssue>,
) -> DailyFigure {
    let window = input.window;
    let mut best: Option<DailyFigure> = None;
    for source in sources(quantity) {
        let candidate = match *source {
            Source::Tank {
                volume_metric,
                level_metric,
            } => tank_gauge(
                quantity,
                volume_metric,
                level_metric,
                input,
                series,
                config,
                issues,
            ),
            Source::Counter(metric) => meter_total(quantity, metric, window, series, config),
            Source::Yesterday(metric) => flow_computer_daily(quantity, metric, window, series),
            Source::Rate(metric) => rate_integration(quantity, metric, window, series, config),
        };
        let Some(candidate) = candidate else { continue };
        if candidate.is_complete() {
            return candidate;
        }
        let better = best
            .as_ref()
            .is_none_or(|b| candidate.coverage.covered_ms() > b.coverage.covered_ms());
        if better {
            best = Some(candidate);
        }
    }
    best.unwrap_or_else(|| DailyFigure::missing(quantity, window))
}

fn apply_correction(
    derived: DailyFigure,
    corrections: &[ManualCorrection],
    issues: &mut Vec<DerivationIssue>,
) -> DailyFigure {
    let quantity = derived.quantity;
    let mut matching = corrections.iter().filter(|c| c.quantity == quantity);
    let Some(mut correction) = matching.next() else {
        return derived;
    };
    if let Some(last) = matching.next_back() {
        correction = last;
        issues.push(DerivationIssue::DuplicateCorrection { quantity });
    }
    DailyFigure {
        quantity,
        value: Some(correction.value),
        method: Method::ManualCorrection,
        coverage: Coverage {
            window_ms: derived.coverage.window_ms,
            gaps: Vec::new(),
        },
        counter_events: Vec::new(),
        correction_reference: Some(correction.reference.clone()),
        derived: Some(Box::new(derived)),
    }
}

fn of_metric<'a>(series: &'a [Series], metric: &'a str) -> impl Iterator<Item = &'a Series> {
    series.iter().filter(move |s| s.metric == metric)
}

/// Sum of several per-series results: values add, gaps unite.
struct Accumulator {
    window: DayWindow,
    value: f64,
    gaps: Vec<Gap>,
    events: Vec<CounterEvent>,
    any: bool,
}

impl Accumulator {
    fn new(window: DayWindow) -> Self {
        Accumulator {
            window,
            value: 0.0,
            gaps: Vec::new(),
            events: Vec::new(),
            any: false,
        }
    }

    fn add(&mut self, value: f64, gaps: Vec<Gap>) {
        self.value += value;
        self.gaps.extend(gaps);
        self.any = true;
    }

    fn finish(self, quantity: Quantity, method: Method) -> Option<DailyFigure> {
        if !self.any {
            return None;
        }
        Some(DailyFigure {
            quantity,
            value: Some(self.value),
            method,
            coverage: Coverage {
                window_ms: self.window.len_ms(),
                gaps: merge_gaps(self.gaps),
            },
            counter_events: self.events,
            correction_reference: None,
            derived: None,
        })
    }
}

/// Sorts and merges overlapping or touching gaps.
fn merge_gaps(mut gaps: Vec<Gap>) -> Vec<Gap> {
    gaps.retain(|g| g.end_ms > g.start_ms);
    gaps.sort_by_key(|g| g.start_ms);
    let mut out: Vec<Gap> = Vec::with_capacity(gaps.len());
    for g in gaps {
        match out.last_mut() {
            Some(last) if g.start_ms <= last.end_ms => last.end_ms = last.end_ms.max(g.end_ms),
            _ => out.push(g),
        }
    }
    out
}

/// Value of a gauge at `t` (readings sorted by time): interpolated between the readings
/// around it when they are at most `max_gap` apart, else held from the nearest reading
/// within `max_gap`, else unknown. The rule [`derive_day`] applies to tank stocks at day
/// boundaries; the production job reads closing stocks with it too.
pub fn value_at(readings: &[Reading], t: i64, max_gap: i64) -> Option<f64> {
    let i = readings.partition_point(|r| r.ts_ms < t);
    let after = readings.get(i);
    let before = if after.is_some_and(|r| r.ts_ms == t) {
        after
    } else {
        i.checked_sub(1).and_then(|j| readings.get(j))
    };
    match (before, after) {
        (Some(b), _) if b.ts_ms == t => Some(b.value),
        (Some(b), Some(a)) if a.ts_ms - b.ts_ms <= max_gap => {
            let f = (t - b.ts_ms) as f64 / (a.ts_ms - b.ts_ms) as f64;
            Some(b.value + (a.value - b.value) * f)
        }
        (Some(b), Some(a)) => {
            let nearest = if t - b.ts_ms <= a.ts_ms - t { b } else { a };
            ((nearest.ts_ms - t).abs() <= max_gap).then_some(nearest.value)
        }
        (Some(b), None) => (t - b.ts_ms <= max_gap).then_some(b.value),
        (None, Some(a)) => (a.ts_ms - t <= max_gap).then_some(a.value),
        (None, None) => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn tank_gauge(
    quantity: Quantity,
    volume_metric: &str,
    level_metric: &str,
    input: &WellDayInput,
    series: &[Series],
    config: &DerivationConfig,
    issues: &mut Vec<DerivationIssue>,
) -> Option<DailyFigure> {
    let window = input.window;
    let mut stocks: Vec<(String, Vec<Reading>)> = of_metric(series, volume_metric)
        .map(|s| (s.source.clone(), s.readings.clone()))
        .collect();
    for s in of_metric(series, level_metric) {
        if stocks.iter().any(|(src, _)| *src == s.source) {
            continue; // the tank also reports volume: use that
        }
        match config.strappings.iter().find(|t| t.source == s.source) {
            Some(strap) => stocks.push((s.source.clone(), strapped(s, strap, issues))),
            None => issues.push(DerivationIssue::LevelWithoutStrapping {
                source: s.source.clone(),
            }),
        }
    }
    if stocks.is_empty() {
        return None;
    }
    let hauled: f64 = input
        .tickets
        .iter()
        .filter(|t| t.quantity == quantity && t.ts_ms >= window.start_ms && t.ts_ms < window.end_ms)
        .map(|t| t.volume_bbl)
        .sum();
    let mut value = hauled;
    let mut gaps = Vec::new();
    for (_, readings) in &stocks {
        let opening = value_at(readings, window.start_ms, config.max_gap_ms);
        let closing = value_at(readings, window.end_ms, config.max_gap_ms);
        match (opening, closing) {
            (Some(o), Some(c)) => value += c - o,
            _ => gaps.push(Gap {
                start_ms: window.start_ms,
                end_ms: window.end_ms,
            }),
        }
    }
    let mut figure = DailyFigure {
        quantity,
        value: Some(value),
        method: Method::TankGauge,
        coverage: Coverage {
            window_ms: window.len_ms(),
            gaps: merge_gaps(gaps),
        },
        counter_events: Vec::new(),
        correction_reference: None,
        derived: None,
    };
    if !figure.coverage.is_complete() {
        // Without both stocks of every tank the day's production is unknown.
        figure.value = None;
    }
    Some(figure)
}

fn strapped(s: &Series, strap: &TankStrapping, issues: &mut Vec<DerivationIssue>) -> Vec<Reading> {
    s.readings
        .iter()
        .filter_map(|r| match strap.volume_bbl(r.value) {
            Some(v) => Some(Reading {
                ts_ms: r.ts_ms,
                value: v,
            }),
            None => {
                issues.push(DerivationIssue::LevelOutsideStrapping {
                    source: s.source.clone(),
                    ts_ms: r.ts_ms,
                });
                None
            }
        })
        .collect()
}

/// Share of the interval `[a, b]` that lies inside the window, as `(start, end)` ms.
fn overlap(a: i64, b: i64, window: DayWindow) -> Option<(i64, i64)> {
    let s = a.max(window.start_ms);
    let e = b.min(window.end_ms);
    (e > s).then_some((s, e))
}

/// Gaps before the first and after the last reading, clipped to the window.
fn edge_gaps(readings: &[Reading], window: DayWindow) -> Vec<Gap> {
    let (Some(first), Some(last)) = (readings.first(), readings.last()) else {
        return vec![Gap {
            start_ms: window.start_ms,
            end_ms: window.end_ms,
        }];
    };
    let mut gaps = Vec::new();
    if first.ts_ms > window.start_ms {
        gaps.push(Gap {
            start_ms: window.start_ms,
            end_ms: first.ts_ms.min(window.end_ms),
        });
    }
    if last.ts_ms < window.end_ms {
        gaps.push(Gap {
            start_ms: last.ts_ms.max(window.start_ms),
            end_ms: window.end_ms,
        });
    }
    gaps
}

/// Fraction of the counter range below which a decrease is a reset, not a rollover.
const ROLLOVER_BAND: f64 = 0.1;

fn meter_total(
    quantity: Quantity,
    metric: &str,
    window: DayWindow,
    series: &[Series],
    config: &DerivationConfig,
) -> Option<DailyFigure> {
    let rollover_at = config
        .counters
        .iter()
        .find(|c| c.metric == metric)
        .map(|c| c.rollover_at);
    let mut acc = Accumulator::new(window);
    for s in of_metric(series, metric) {
        let r = &s.readings;
        let mut gaps = edge_gaps(r, window);
        let mut value = 0.0;
        for pair in r.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let Some((s0, s1)) = overlap(a.ts_ms, b.ts_ms, window) else {
                continue;
            };
            let (increment, event) = counter_increment(a.value, b.value, rollover_at);
            if let Some(kind) = event {
                acc.events.push(CounterEvent {
                    source: s.source.clone(),
                    ts_ms: b.ts_ms,
                    kind,
                });
            }
            let span = b.ts_ms - a.ts_ms;
            value += increment * (s1 - s0) as f64 / span as f64;
            let inside = a.ts_ms >= window.start_ms && b.ts_ms <= window.end_ms;
            let exact = inside && event != Some(CounterEventKind::Reset);
            if span > config.max_gap_ms && !exact {
                gaps.push(Gap {
                    start_ms: s0,
                    end_ms: s1,
                });
            }
        }
        acc.add(value, gaps);
    }
    acc.finish(quantity, Method::MeterTotal)
}

/// Increment between two counter readings, and the discontinuity if any.
fn counter_increment(
    prev: f64,
    next: f64,
    rollover_at: Option<f64>,
) -> (f64, Option<CounterEventKind>) {
    if next >= prev {
        return (next - prev, None);
    }
    match rollover_at {
        Some(m) if prev >= m * (1.0 - ROLLOVER_BAND) && prev <= m => {
            (m - prev + next, Some(CounterEventKind::Rollover))
        }
        _ => (next.max(0.0), Some(CounterEventKind::Reset)),
    }
}

fn flow_computer_daily(
    quantity: Quantity,
    metric: &str,
    window: DayWindow,
    series: &[Series],
) -> Option<DailyFigure> {
    let mut acc = Accumulator::new(window);
    let mut found_series = false;
    let from = window.end_ms;
    for s in of_metric(series, metric) {
        found_series = true;
        let latched = s
            .readings
            .iter()
            .find(|r| r.ts_ms >= from && r.ts_ms < from + MS_PER_DAY as i64);
        match latched {
            Some(r) => acc.add(r.value, Vec::new()),
            None => acc.add(
                0.0,
                vec![Gap {
                    start_ms: window.start_ms,
                    end_ms: window.end_ms,
                }],
            ),
        }
    }
    if !found_series {
        return None;
    }
    let mut figure = acc.finish(quantity, Method::FlowComputerDaily)?;
    if !figure.coverage.is_complete() {
        figure.value = None;
    }
    Some(figure)
}

fn rate_integration(
    quantity: Quantity,
    metric: &str,
    window: DayWindow,
    series: &[Series],
    config: &DerivationConfig,
) -> Option<DailyFigure> {
    let mut acc = Accumulator::new(window);
    for s in of_metric(series, metric) {
        let r = &s.readings;
        let mut gaps = edge_gaps(r, window);
        let mut value = 0.0;
        for pair in r.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let Some((s0, s1)) = overlap(a.ts_ms, b.ts_ms, window) else {
                continue;
            };
            if b.ts_ms - a.ts_ms > config.max_gap_ms {
                gaps.push(Gap {
                    start_ms: s0,
                    end_ms: s1,
                });
                continue;
            }
            let at = |t: i64| {
                a.value + (b.value - a.value) * (t - a.ts_ms) as f64 / (b.ts_ms - a.ts_ms) as f64
            };
            value += (at(s0) + at(s1)) / 2.0 * (s1 - s0) as f64 / MS_PER_DAY;
        }
        acc.add(value, gaps);
    }
    let mut figure = acc.finish(quantity, Method::RateIntegration)?;
    if figure.coverage.covered_ms() == 0 {
        figure.value = None;
    }
    Some(figure)
}

/// A month (or any period) of one quantity rolled up from daily figures.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodTotal {
    /// Sum of the known daily values.
    pub total: f64,
    /// Number of days whose figure is complete.
    pub complete_days: u32,
    /// Start of every day whose figure is missing or has gaps (UTC ms).
    pub incomplete_days: Vec<i64>,
    /// Methods used, without repetition.
    pub methods: BTreeSet<Method>,
}

impl PeriodTotal {
    /// True when every day is complete.
    pub fn is_complete(&self) -> bool {
        self.incomplete_days.is_empty()
    }

    /// A complete total from a known value (e.g. an allocated or statement figure).
    pub fn known(total: f64, days: u32, method: Method) -> Self {
        PeriodTotal {
            total,
            complete_days: days,
            incomplete_days: Vec::new(),
            methods: BTreeSet::from([method]),
        }
    }
}

/// Rolls daily figures of one well up into per-quantity totals.
pub fn monthly_totals(days: &[DailyProduction]) -> [(Quantity, PeriodTotal); 6] {
    Quantity::ALL.map(|q| {
        let mut t = PeriodTotal {
            total: 0.0,
            complete_days: 0,
            incomplete_days: Vec::new(),
            methods: BTreeSet::new(),
        };
        for d in days {
            let f = d.figure(q);
            t.total += f.value.unwrap_or(0.0);
            t.methods.insert(f.method);
            if f.is_complete() {
                t.complete_days += 1;
            } else {
                t.incomplete_days.push(d.window.start_ms);
            }
        }
        (q, t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ts_ms: i64, value: f64) -> Reading {
        Reading { ts_ms, value }
    }

    #[test]
    fn strapping_interpolates_and_rejects_outside() {
        let s = TankStrapping {
            source: "t".into(),
            points: vec![(0.0, 0.0), (10.0, 16.7), (20.0, 33.4)],
        };
        assert_eq!(s.volume_bbl(0.0), Some(0.0));
        assert!((s.volume_bbl(15.0).unwrap() - 25.05).abs() < 1e-12);
        assert_eq!(s.volume_bbl(20.0), Some(33.4));
        assert_eq!(s.volume_bbl(-1.0), None);
        assert_eq!(s.volume_bbl(21.0), None);
    }

    #[test]
    fn value_at_interpolates_holds_and_refuses() {
        let rs = [r(0, 10.0), r(100, 20.0), r(1000, 30.0)];
        assert_eq!(value_at(&rs, 50, 200), Some(15.0));
        assert_eq!(value_at(&rs, 100, 200), Some(20.0));
        // 100..1000 exceeds max gap: hold nearest within max gap.
        assert_eq!(value_at(&rs, 250, 200), Some(20.0));
        assert_eq!(value_at(&rs, 900, 200), Some(30.0));
        assert_eq!(value_at(&rs, 550, 200), None);
        assert_eq!(value_at(&rs, 1300, 200), None);
        assert_eq!(value_at(&[], 0, 200), None);
    }

    #[test]
    fn counter_increment_cases() {
        assert_eq!(counter_increment(5.0, 7.5, None), (2.5, None));
        assert_eq!(
            counter_increment(99_990.0, 15.0, Some(100_000.0)),
            (25.0, Some(CounterEventKind::Rollover))
        );
        assert_eq!(
            counter_increment(500.0, 3.0, Some(100_000.0)),
            (3.0, Some(CounterEventKind::Reset))
        );
        assert_eq!(
            counter_increment(500.0, 3.0, None),
            (3.0, Some(CounterEventKind::Reset))
        );
    }

    #[test]
    fn merge_gaps_unites_overlaps() {
        let g = |s, e| Gap {
            start_ms: s,
            end_ms: e,
        };
        assert_eq!(
            merge_gaps(vec![g(5, 8), g(0, 3), g(2, 4), g(8, 9), g(7, 7)]),
            vec![g(0, 4), g(5, 9)]
        );
    }
}
