//! Plunger lift (gas well): a timer and pressure driven cycle.
//!
//! # Cycle
//!
//! Timers are the controller's writable setpoints (defaults from the seed): shut-in
//! `close`, maximum open time waiting for the plunger `open`, `afterflow`, and an optional
//! casing pressure `P_open` that ends the shut-in early. The cycle has a fixed period
//! `P = close_eff + travel + afterflow`, anchored at first production or at the latest
//! client write (a new setting starts a new cycle):
//!
//! * `0 ≤ φ < close_eff` — shut-in (state 0), motor valve closed, casing builds
//!   `Pc = Pc_min + B·(1 − e^(−φ/τ))` (`Pc_min = line + 30…80 psi`, `B` 120–300 psi,
//!   `τ` 20–60 min); tubing recovers towards `Pc − 40` (liquid slug). With `P_open` set,
//!   `close_eff = min(close, −τ·ln(1 − (P_open − Pc_min)/B))`.
//! * valve opens: the plunger rises (state 1) for `travel_k = travel·(1 ± 20 %)` (seeded
//!   per cycle, capped by `open`), arrives (arrival sensor on, counter +1), afterflow
//!   (state 2) until the end of the period while the casing blows down
//!   `Pc = Pc_min + (Pc_open − Pc_min)·e^(−4y/Y)`.
//! * Non-arrivals: a Sturmian (Beatty) sequence with density 1–6 % decides which cycles
//!   miss — `miss(k) = ⌊(k+1)·q + φ⌋ − ⌊k·q + φ⌋` — so the number of misses among the
//!   first `K` cycles is exactly `⌊K·q + φ⌋ − ⌊φ⌋` and the arrival counter stays closed
//!   form. If `open` is shorter than the nominal travel, every cycle misses. A missed
//!   cycle keeps the valve open for `open` minutes, then closes for the rest of the period
//!   (state 3, mandatory shut-in) and raises the non-arrival alarm until the next arrival.
//!
//! Gas and liquids are produced on the Arps decline; meters report the cycle-averaged rate.

use crate::noise::{hash_str, key, signed, unit};

use super::Eval;
use super::params::{MINUTE_MS, SimMs};

/// Plunger cycle settings in force over a segment between client writes.
#[derive(Debug, Clone, Copy)]
struct Settings {
    /// Start of the segment (cycle 0 starts here).
    start: SimMs,
    close: i64,
    travel: i64,
    open_max: i64,
    period: i64,
    all_miss: bool,
    /// Miss density and phase of the segment's Sturmian sequence.
    q: f64,
    phi: f64,
}

impl Settings {
    /// Misses among cycles `0..k`.
    fn misses_before(&self, k: i64) -> i64 {
        if k <= 0 {
            return 0;
        }
        if self.all_miss {
            return k;
        }
        ((k as f64) * self.q + self.phi).floor() as i64 - self.phi.floor() as i64
    }

    fn missed(&self, k: i64) -> bool {
        self.misses_before(k + 1) - self.misses_before(k) == 1
    }

    /// How long the valve stays open waiting on a missed cycle.
    fn open_wait(&self) -> i64 {
        self.open_max.min(self.period - self.close)
    }
}

/// Position in the cycle at a time.
#[derive(Debug, Clone, Copy)]
struct Position {
    s: Settings,
    k: i64,
    phase: i64,
    travel: i64,
    missed: bool,
}

impl Position {
    fn arrived(&self) -> bool {
        !self.missed && self.phase >= self.s.close + self.travel
    }

    /// Whether the cycle's outcome (arrival or miss) is known.
    fn resolved(&self) -> bool {
        self.arrived() || (self.missed && self.phase >= self.s.close + self.s.open_wait())
    }

    /// Cycle state code: 0 shut-in, 1 rising, 2 afterflow, 3 mandatory shut-in.
    fn state(&self) -> u8 {
        if self.phase < self.s.close {
            0
        } else if self.arrived() {
            2
        } else if self.missed && self.resolved() {
            3
        } else {
            1
        }
    }
}

/// Number of `j ≥ 0` with `start + j·period` in `[a, b)`.
fn starts_in(start: SimMs, period: i64, a: SimMs, b: SimMs) -> i64 {
    let a = a.max(start);
    if b <= a {
        return 0;
    }
    let first = (a - start + period - 1).div_euclid(period);
    let last = (b - 1 - start).div_euclid(period);
    (last - first + 1).max(0)
}

impl Eval<'_> {
    fn default_open_min(&self) -> f64 {
        (1.5 * self.p.travel_min).ceil()
    }

    /// Settings of plunger controller `dev` in force at `t`.
    fn settings(&self, dev: usize, t: SimMs) -> Settings {
        let p = self.p;
        let start = self
            .h
            .writes
            .iter()
            .filter(|w| w.device == dev && w.at <= t)
            .map(|w| w.at)
            .max()
            .unwrap_or(p.online_ms)
            .max(p.online_ms);
        let ms = |min: f64| (min * MINUTE_MS as f64) as i64;
        let sp = |metric, default| self.setpoint(dev, metric, t, default);
        let close_min = sp("plunger_close_time_setpoint_min", p.close_min).max(1.0);
        let open_min = sp("plunger_open_time_setpoint_min", self.default_open_min());
        let afterflow_min = sp("plunger_afterflow_setpoint_min", p.afterflow_min);
        let open_psi = sp("casing_pressure_open_setpoint_psi", 0.0);
        let need = (open_psi - (p.line_psi + p.casing_min_over_line_psi)) / p.casing_buildup_psi;
        let close_eff = if open_psi <= 0.0 || need >= 1.0 {
            close_min
        } else if need <= 0.0 {
            1.0
        } else {
            close_min
                .min(-p.buildup_tau_min * (1.0 - need).ln())
                .max(1.0)
        };
        let close = ms(close_eff);
        let travel = ms(p.travel_min);
        Settings {
            start,
            close,
            travel,
            open_max: ms(open_min),
            period: close + travel + ms(afterflow_min),
            all_miss: open_min < p.travel_min,
            q: p.miss_fraction,
            phi: unit(key(&[p.key, hash_str("miss"), start as u64])),
        }
    }

    fn position(&self, dev: usize, t: SimMs) -> Position {
        let s = self.settings(dev, t);
        let k = (t - s.start).div_euclid(s.period);
        let jitter = signed(key(&[
            self.p.key,
            hash_str("travel"),
            s.start as u64,
            k as u64,
        ]));
        let travel = ((s.travel as f64 * (1.0 + 0.2 * jitter)) as i64)
            .min(s.open_max)
            .min(s.period - s.close);
        Position {
            s,
            k,
            phase: (t - s.start).rem_euclid(s.period),
            travel,
            missed: s.missed(k),
        }
    }

    /// Segment starts (first production and client writes) of `dev` up to `t`, ascending.
    fn segments(&self, dev: usize, t: SimMs) -> Vec<SimMs> {
        let mut starts: Vec<SimMs> = self
            .h
            .writes
            .iter()
            .filter(|w| w.device == dev && w.at <= t && w.at > self.p.online_ms)
            .map(|w| w.at)
            .collect();
        starts.push(self.p.online_ms);
        starts.sort_unstable();
        starts.dedup();
        starts
    }

    /// Arrivals in the segment starting at `start` up to (excluding) `end`.
    fn arrivals_in(&self, dev: usize, start: SimMs, end: SimMs) -> i64 {
        let last = self.position(dev, end - 1);
        debug_assert_eq!(last.s.start, start);
        last.k - last.s.misses_before(last.k) + i64::from(last.arrived())
    }

    fn arrivals_total(&self, dev: usize) -> i64 {
        let segs = self.segments(dev, self.t);
        let mut total = 0;
        for (i, start) in segs.iter().enumerate() {
            let end = segs.get(i + 1).copied().unwrap_or(self.t + 1);
            total += self.arrivals_in(dev, *start, end);
        }
        total
    }

    /// Cycles started and misses resolved in `[a, t]`.
    fn cycles_and_misses_since(&self, dev: usize, a: SimMs) -> (i64, i64) {
        let segs = self.segments(dev, self.t);
        let (mut cycles, mut misses) = (0, 0);
        for i in 0..segs.len() {
            let end = segs.get(i + 1).copied().unwrap_or(self.t + 1);
            if end <= a {
                continue;
            }
            let s = self.settings(dev, end - 1);
            cycles += starts_in(s.start, s.period, a, end);
            // A miss resolves when the valve closes after waiting open_wait.
            let resolve = s.start + s.close + s.open_wait();
            let first = starts_in(resolve, s.period, resolve, a);
            let upto = starts_in(resolve, s.period, resolve, end);
            misses += s.misses_before(upto) - s.misses_before(first);
        }
        (cycles, misses)
    }

    fn last_travel_s(&self, dev: usize) -> f64 {
        let now = self.position(dev, self.t);
        if now.arrived() {
            return (now.travel as f64 / 1000.0).round();
        }
        let mut k = now.k - 1;
        while k >= 0 && now.k - k <= 50 {
            let at = now.s.start + k * now.s.period;
            let pos = self.position(dev, at);
            if !pos.missed {
                return (pos.travel as f64 / 1000.0).round();
            }
            k -= 1;
        }
        0.0
    }

    /// `(casing, tubing)` pressure of the well of plunger controller `dev`, psi.
    pub(crate) fn plunger_pressures(&self, dev: usize) -> (f64, f64) {
        let pos = self.position(dev, self.t);
        let s = pos.s;
        let p = self.p;
        let lp = self.line_pressure();
        let c_min = lp + p.casing_min_over_line_psi;
        let tau = p.buildup_tau_min * MINUTE_MS as f64;
        let build = |dt: i64| c_min + p.casing_buildup_psi * (1.0 - (-(dt as f64) / tau).exp());
        let slug = |casing: f64, x: f64| lp + (casing - 40.0 - lp) * (1.0 - (-5.0 * x).exp());
        let (casing, tubing) = match pos.state() {
            0 => {
                let casing = build(pos.phase);
                (casing, slug(casing, pos.phase as f64 / s.close as f64))
            }
            3 => {
                let dt = pos.phase - s.close - s.open_wait();
                let casing = build(dt);
                (casing, slug(casing, dt as f64 / (10 * MINUTE_MS) as f64))
            }
            state => {
                let y = (pos.phase - s.close) as f64;
                let big_y = (s.period - s.close) as f64;
                let casing = c_min + (build(s.close) - c_min) * (-4.0 * y / big_y).exp();
                let tubing = if state == 2 {
                    let after_min = (y - pos.travel as f64) / MINUTE_MS as f64;
                    lp + 8.0 + 20.0 * (-after_min / 10.0).exp()
                } else {
                    lp + 15.0 + 0.3 * (casing - lp)
                };
                (casing, tubing)
            }
        };
        (
            casing + 0.3 * self.process("plunger-casing", 60.0),
            tubing.max(lp) + 0.5 * self.process("plunger-tubing", 60.0),
        )
    }

    /// Metrics of a plunger lift controller (`dev` is the device being read).
    pub fn plunger_metric(&self, metric: &str) -> Option<f64> {
        if self.t < self.p.online_ms {
            return None;
        }
        let dev = self.dev;
        let flag = |b: bool| f64::from(u8::from(b));
        let pos = self.position(dev, self.t);
        let v = match metric {
            "plunger_cycle_state" => f64::from(pos.state()),
            "valve_open" => flag(matches!(pos.state(), 1 | 2)),
            "plunger_arrival_sensor" => flag(pos.state() == 2),
            "plunger_non_arrival_alarm" => {
                if pos.resolved() {
                    flag(pos.missed)
                } else {
                    flag(pos.k > 0 && pos.s.missed(pos.k - 1))
                }
            }
            "plunger_arrivals_total" => self.arrivals_total(dev) as f64,
            "plunger_travel_time_s" => self.last_travel_s(dev),
            "plunger_cycles_today" => {
                self.cycles_and_misses_since(dev, self.day_start(self.t)).0 as f64
            }
            "plunger_misses_today" => {
                self.cycles_and_misses_since(dev, self.day_start(self.t)).1 as f64
            }
            "plunger_close_time_setpoint_min" => self.p.close_min,
            "plunger_open_time_setpoint_min" => self.default_open_min(),
            "plunger_afterflow_setpoint_min" => self.p.afterflow_min,
            "casing_pressure_open_setpoint_psi" => 0.0,
            _ => return None,
        };
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::params::{DAY_MS, Lift, REFERENCE_EPOCH_MS, WellParams};
    use crate::model::testutil::device;
    use crate::model::timeline::{WellHistory, Write};
    use crate::model::{DeviceInfo, Role};
    use proptest::prelude::*;

    const T0: SimMs = REFERENCE_EPOCH_MS + 200 * DAY_MS;
    const METRICS: &[&str] = &[
        "plunger_close_time_setpoint_min",
        "plunger_open_time_setpoint_min",
        "plunger_afterflow_setpoint_min",
        "casing_pressure_open_setpoint_psi",
    ];

    fn setup(seed: u64) -> (WellParams, Vec<DeviceInfo>) {
        (
            WellParams::draw(seed, "well-007", Lift::Plunger),
            vec![device("plc", Role::Plunger, METRICS)],
        )
    }

    fn eval<'a>(p: &'a WellParams, h: &'a WellHistory, d: &'a [DeviceInfo], t: SimMs) -> Eval<'a> {
        Eval {
            p,
            h,
            devices: d,
            dev: 0,
            t,
        }
    }

    #[test]
    fn sturmian_misses_have_the_closed_form_count() {
        let s = Settings {
            start: 0,
            close: 1,
            travel: 1,
            open_max: 1,
            period: 3,
            all_miss: false,
            q: 0.037,
            phi: 0.61,
        };
        let mut counted = 0;
        for k in 0..5000 {
            assert_eq!(s.misses_before(k), counted);
            counted += i64::from(s.missed(k));
        }
        assert!((counted as f64 / 5000.0 - 0.037).abs() < 0.001);
    }

    #[test]
    fn cycle_builds_and_blows_down_casing_and_counts_arrivals() {
        let (p, d) = setup(11);
        let h = WellHistory::default();
        let e = eval(&p, &h, &d, T0);
        // Find an arriving cycle.
        let mut pos = e.position(0, T0);
        let mut at = T0 - pos.phase;
        while pos.missed {
            at += pos.s.period;
            pos = e.position(0, at);
        }
        let cycle_start = at - e.position(0, at).phase;
        let s = pos.s;
        let m = |dt: i64, name: &str| e.at(cycle_start + dt).metric(name).unwrap();
        assert_eq!(m(1000, "valve_open"), 0.0);
        assert_eq!(m(s.close + 1000, "valve_open"), 1.0);
        assert_eq!(m(s.close + 1000, "plunger_cycle_state"), 1.0);
        let cp = |dt| e.at(cycle_start + dt).casing_pressure();
        assert!(cp(s.close - 1000) > cp(1000) + 50.0);
        assert!(cp(s.period - 60_000) < cp(s.close - 1000) - 50.0);
        let n = m(0, "plunger_arrivals_total");
        let arrival = s.close + pos.travel;
        assert_eq!(m(arrival - 1000, "plunger_arrivals_total"), n);
        assert_eq!(m(arrival, "plunger_arrivals_total"), n + 1.0);
        assert_eq!(m(arrival, "plunger_arrival_sensor"), 1.0);
        assert_eq!(m(arrival, "plunger_cycle_state"), 2.0);
        let travel = m(arrival + 1000, "plunger_travel_time_s");
        assert!((travel - pos.travel as f64 / 1000.0).abs() <= 0.5);
    }

    #[test]
    fn short_open_time_makes_every_cycle_miss() {
        let (p, d) = setup(4);
        let mut h = WellHistory::default();
        h.writes.push(Write {
            device: 0,
            tag: 1,
            at: T0,
            value: 1.0,
        });
        let e = eval(&p, &h, &d, T0);
        let n0 = e.metric("plunger_arrivals_total").unwrap();
        let later = e.at(T0 + DAY_MS / 2);
        assert_eq!(later.metric("plunger_arrivals_total"), Some(n0));
        assert!(later.metric("plunger_misses_today").unwrap() >= 1.0);
        let s = later.settings(0, T0 + DAY_MS / 2);
        let missed_end = T0 + s.close + s.open_wait() + 1000;
        assert_eq!(e.at(missed_end).metric("plunger_cycle_state"), Some(3.0));
        assert_eq!(
            e.at(missed_end).metric("plunger_non_arrival_alarm"),
            Some(1.0)
        );
    }

    #[test]
    fn casing_open_pressure_shortens_the_shut_in() {
        let (p, d) = setup(9);
        let mut h = WellHistory::default();
        let c_min = p.line_psi + p.casing_min_over_line_psi;
        h.writes.push(Write {
            device: 0,
            tag: 3,
            at: T0,
            value: c_min + 0.3 * p.casing_buildup_psi,
        });
        let s = eval(&p, &h, &d, T0).settings(0, T0);
        let expected = -p.buildup_tau_min * 0.7f64.ln();
        assert!((s.close as f64 / MINUTE_MS as f64 - expected.min(p.close_min)).abs() < 0.01);
    }

    proptest! {
        #[test]
        fn arrivals_never_decrease(seed in 0u64..50, steps in prop::collection::vec(1i64..3_600_000, 1..40)) {
            let (p, d) = setup(seed);
            let h = WellHistory::default();
            let mut t = T0;
            let mut prev = eval(&p, &h, &d, t).metric("plunger_arrivals_total").unwrap();
            for s in steps {
                t += s;
                let n = eval(&p, &h, &d, t).metric("plunger_arrivals_total").unwrap();
                prop_assert!(n >= prev);
                prev = n;
            }
        }
    }
}
