//! The physical model of a well site: what every canonical metric reads at a given
//! simulated second.
//!
//! # Structure
//!
//! A well has seeded [`params::WellParams`] and a [`timeline::WellHistory`] (failure
//! windows and client writes). A metric value is computed by an [`Eval`]: the well, its
//! history, the device being read and the simulated time `t` (ms, a whole second). The
//! result is the *engineering* value; the device layer turns it into registers with the
//! profile's codec. Nothing is stepped or cached in the model: every value, including the
//! running totals, is a closed-form function of `t`.
//!
//! # Models (see the sub-modules for equations)
//!
//! * [`decline`]: Arps decline of the oil (condensate) rate; water and gas follow through
//!   water cut and GOR ([`production`]: rates, totals, wellhead pressures).
//! * [`pump`]: operating regime of pumped lift (normal, pump-off, rod part, gas lock,
//!   stopped, POC cycling) and exact run-time / start integrals; [`rod`]: beam pump loads,
//!   fillage, strokes; [`esp`]: affinity laws, intake pressure, energy; [`plunger`]: the
//!   shut-in / rise / afterflow cycle and arrivals.
//! * [`meter`]: orifice gas measurement, energy, flare / fuel / vent meters, contract day.
//! * [`tank`]: oil tank with water bottoms filling from production and hauled on a schedule.
//! * [`detector`]: fixed H₂S / LEL detector with baselines, excursions and alarms;
//!   [`site`]: solar power and enclosure temperature.
//!
//! A metric is looked up on the device's own equipment first (rod pump, ESP, plunger
//! controller), then among the well-level quantities any device may carry. Setpoint-like
//! metrics read their default here; the device layer serves written values.
//!
//! # Noise
//!
//! *Process* variation (line pressure wandering, ambient temperature) is smooth noise
//! keyed by the well, so two devices measuring the same quantity agree; *measurement*
//! noise is white noise keyed by (device, metric, second), a fraction of a percent.

pub(crate) mod decline;
pub(crate) mod detector;
pub(crate) mod esp;
pub(crate) mod meter;
pub(crate) mod params;
pub(crate) mod plunger;
pub(crate) mod production;
pub(crate) mod pump;
pub(crate) mod rod;
pub(crate) mod site;
pub(crate) mod tank;
pub(crate) mod timeline;

use std::collections::HashMap;

use crate::noise::{hash_str, key, signed, smooth};
use params::{DAY_MS, Lift, SimMs, WellParams};
use timeline::WellHistory;

/// What a device is, physically, decided from the metrics its profile carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    RodPump,
    Esp,
    Plunger,
    FlowComputer,
    TankGauge,
    GasDetector,
    Other,
}

impl Role {
    /// Classifies a device by the canonical metrics of its profile (first match wins, lift
    /// equipment first).
    pub fn classify<'a>(metrics: impl IntoIterator<Item = &'a str> + Clone) -> Role {
        let has = |names: &[&str]| metrics.clone().into_iter().any(|m| names.contains(&m));
        if has(&[
            "stroke_count_total",
            "pump_fillage_pct",
            "rod_load_peak_lbf",
        ]) {
            Role::RodPump
        } else if has(&["pump_intake_pressure_psi", "motor_frequency_hz"]) {
            Role::Esp
        } else if has(&["plunger_arrivals_total", "plunger_travel_time_s"]) {
            Role::Plunger
        } else if has(&[
            "gas_rate_mcfd",
            "differential_pressure_inh2o",
            "gas_volume_total_mcf",
        ]) {
            Role::FlowComputer
        } else if has(&["oil_level_in", "water_level_in", "oil_volume_bbl"]) {
            Role::TankGauge
        } else if has(&["h2s_ppm", "lel_pct"]) {
            Role::GasDetector
        } else {
            Role::Other
        }
    }

    /// The lift method this device implies for its well, if it is lift equipment.
    pub fn lift(self) -> Option<Lift> {
        match self {
            Role::RodPump => Some(Lift::RodPump),
            Role::Esp => Some(Lift::Esp),
            Role::Plunger => Some(Lift::Plunger),
            _ => None,
        }
    }
}

/// What the model needs to know about one device of a well.
#[derive(Debug, Clone)]
pub(crate) struct DeviceInfo {
    /// Noise key (seed ⊕ device name).
    pub key: u64,
    pub role: Role,
    /// Canonical metric → tag index in the device's profile.
    pub metric_tags: HashMap<String, usize>,
    /// Gas detectors: `(day, alarms before that day)`, a cache of the alarm counter's
    /// history up to the day of the clock origin (no client writes exist before it).
    pub alarm_base: Option<(i64, u64)>,
}

/// The evaluation context: one device of one well at one simulated second.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Eval<'a> {
    pub p: &'a WellParams,
    pub h: &'a WellHistory,
    pub devices: &'a [DeviceInfo],
    /// Index of the device being read.
    pub dev: usize,
    /// Simulated time, ms (a whole second).
    pub t: SimMs,
}

impl Eval<'_> {
    /// Engineering value of canonical metric `metric`, or `None` if the model does not know
    /// the metric.
    pub fn metric(&self, metric: &str) -> Option<f64> {
        let own = match self.device().role {
            Role::RodPump => self.rod_metric(metric),
            Role::Esp => self.esp_metric(metric),
            Role::Plunger => self.plunger_metric(metric),
            _ => None,
        };
        own.or_else(|| self.production_metric(metric))
            .or_else(|| self.meter_metric(metric))
            .or_else(|| self.tank_metric(metric))
            .or_else(|| self.detector_metric(metric))
            .or_else(|| self.site_metric(metric))
    }

    /// The same context at another time.
    pub fn at(&self, t: SimMs) -> Self {
        Self { t, ..*self }
    }

    /// The device being read.
    pub fn device(&self) -> &DeviceInfo {
        &self.devices[self.dev]
    }

    /// Index of the well's lift device of role `role` (the device itself when it has it).
    pub fn lift_device(&self, role: Role) -> Option<usize> {
        if self.device().role == role {
            return Some(self.dev);
        }
        self.devices.iter().position(|d| d.role == role)
    }

    /// Engineering value of a setpoint-like tag of `device` at time `t`: the last value a
    /// client wrote, else `default`.
    pub fn setpoint(&self, device: usize, metric: &str, t: SimMs, default: f64) -> f64 {
        self.devices[device]
            .metric_tags
            .get(metric)
            .and_then(|tag| self.h.written(device, *tag, t))
            .map_or(default, |w| w.value)
    }

    /// Simulated seconds (for noise).
    pub fn secs(&self) -> f64 {
        (self.t / 1000) as f64
    }

    /// Smooth process noise of the well in `[-1, 1]` for quantity `what`, knots every
    /// `period_s` seconds.
    pub fn process(&self, what: &str, period_s: f64) -> f64 {
        smooth(key(&[self.p.key, hash_str(what)]), self.secs(), period_s)
    }

    /// Per-second measurement noise in `[-1, 1)` of the device for `what`.
    pub fn white(&self, what: &str) -> f64 {
        signed(key(&[
            self.device().key,
            hash_str(what),
            (self.t / 1000) as u64,
        ]))
    }

    /// `value` with relative measurement noise of `rel` (e.g. 0.002 = ±0.2 %).
    pub fn measured(&self, what: &str, value: f64, rel: f64) -> f64 {
        value * (1.0 + rel * self.white(what))
    }

    /// Diurnal cycle in `[-1, 1]`, peaking at 21:00 UTC (15:00 US Central).
    pub fn diurnal(&self) -> f64 {
        let hours = self.t.rem_euclid(DAY_MS) as f64 / 3_600_000.0;
        (2.0 * std::f64::consts::PI * (hours - 15.0) / 24.0).sin()
    }

    /// Sunlight in `[0, 1]`: a half sine between 12:00 and 24:00 UTC (06:00–18:00 Central).
    pub fn daylight(&self) -> f64 {
        let hours = self.t.rem_euclid(DAY_MS) as f64 / 3_600_000.0;
        (2.0 * std::f64::consts::PI * (hours - 12.0) / 24.0)
            .sin()
            .max(0.0)
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Builders for model unit tests.
    use super::*;

    pub(crate) fn device(name: &str, role: Role, metrics: &[&str]) -> DeviceInfo {
        DeviceInfo {
            key: key(&[1, hash_str(name)]),
            role,
            metric_tags: metrics
                .iter()
                .enumerate()
                .map(|(i, m)| ((*m).to_owned(), i))
                .collect(),
            alarm_base: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_by_metrics() {
        assert_eq!(
            Role::classify(["tubing_pressure_psi", "stroke_count_total"]),
            Role::RodPump
        );
        assert_eq!(Role::classify(["motor_frequency_hz"]), Role::Esp);
        assert_eq!(Role::classify(["plunger_arrivals_total"]), Role::Plunger);
        assert_eq!(Role::classify(["gas_rate_mcfd"]), Role::FlowComputer);
        assert_eq!(Role::classify(["oil_level_in"]), Role::TankGauge);
        assert_eq!(Role::classify(["h2s_ppm"]), Role::GasDetector);
        assert_eq!(Role::classify(["battery_voltage_v"]), Role::Other);
        assert_eq!(Role::Esp.lift(), Some(Lift::Esp));
        assert_eq!(Role::TankGauge.lift(), None);
    }
}
