//! Report by exception: which readings become samples, and with which quality.
//!
//! Every tag has a [`TagState`]. Each poll hands it a [`Reading`] (a decoded value, or a
//! failure) and the state decides whether a sample goes out:
//!
//! * **Quality** is `Bad` when the device gave no usable value (timeout, I/O error,
//!   exception, or a non-finite float); `Uncertain` when the engineering value lies outside
//!   the profile's valid range; `Stale` when the raw reading has not changed for
//!   `stale_after` (only for measured values: state tags and writable setpoints legitimately
//!   stay constant, and without `stale_after` the check is off); otherwise `Good`.
//!   Precedence: Bad, Uncertain, Stale, Good.
//! * **Emission**: a sample is emitted on the first reading, when its quality changes, when
//!   `heartbeat` has passed since the tag's last emitted sample, or — while the quality is
//!   not `Bad` — when the value moved: a boolean flipped, the deadband is 0 ("send every
//!   poll"), or the engineering value moved more than the deadband from the last emitted
//!   value.
//!
//! The `Bad` rule is therefore "on the first failure, then every heartbeat": a device that is
//! down for an hour costs one sample per tag per heartbeat instead of one per poll, and the
//! cloud still sees a fresh `Bad` often enough to tell "down" from "gateway silent". A
//! `Bad` sample never carries a value (the wire contract: bad = no answer).
//!
//! The stale clock tracks the time of the last *raw* change and is not reset by failures,
//! so a frozen transmitter behind a flaky link is still detected.

use tokio::time::{Duration, Instant};
use wire::{Quality, Value};

/// Per-tag emission settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmitPolicy {
    /// Maximum silence between two samples of the tag.
    pub heartbeat: Duration,
    /// Engineering-unit threshold; 0 sends every poll.
    pub deadband: f64,
    /// Frozen-value threshold, `None` when the tag is not checked.
    pub stale_after: Option<Duration>,
}

/// The outcome of reading one tag in one poll.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// A decoded raw value, its engineering value and whether that is in the valid range.
    Value {
        /// Raw value as it goes on the wire.
        raw: Value,
        /// `raw * scale + offset`.
        eng: f64,
        /// Inside the profile's valid range.
        in_range: bool,
    },
    /// No usable value this poll.
    Failed,
}

/// The last emitted sample of a tag.
#[derive(Debug, Clone, Copy)]
struct Emitted {
    quality: Quality,
    raw: Option<Value>,
    eng: f64,
    at: Instant,
}

/// Report-by-exception state of one tag.
#[derive(Debug, Clone, Default)]
pub struct TagState {
    emitted: Option<Emitted>,
    /// Last raw value read and when it last changed.
    last_raw: Option<(Value, Instant)>,
}

impl TagState {
    /// Applies one reading; returns the sample (value, quality) to emit, if any.
    pub fn observe(
        &mut self,
        reading: Reading,
        now: Instant,
        policy: &EmitPolicy,
    ) -> Option<(Option<Value>, Quality)> {
        let (raw, eng, quality) = match reading {
            Reading::Failed => (None, f64::NAN, Quality::Bad),
            Reading::Value { raw, eng, in_range } => {
                let frozen = self.track_raw(raw, now, policy.stale_after);
                let quality = if !in_range {
                    Quality::Uncertain
                } else if frozen {
                    Quality::Stale
                } else {
                    Quality::Good
                };
                (Some(raw), eng, quality)
            }
        };
        if !self.should_emit(raw, eng, quality, now, policy) {
            return None;
        }
        self.emitted = Some(Emitted {
            quality,
            raw,
            eng,
            at: now,
        });
        Some((raw, quality))
    }

    /// Updates the raw-change clock; true when the value is frozen beyond `stale_after`.
    fn track_raw(&mut self, raw: Value, now: Instant, stale_after: Option<Duration>) -> bool {
        match self.last_raw {
            Some((last, since)) if last == raw => {
                stale_after.is_some_and(|limit| now.duration_since(since) >= limit)
            }
            _ => {
                self.last_raw = Some((raw, now));
                false
            }
        }
    }

    fn should_emit(
        &self,
        raw: Option<Value>,
        eng: f64,
        quality: Quality,
        now: Instant,
        policy: &EmitPolicy,
    ) -> bool {
        let Some(last) = self.emitted else {
            return true;
        };
        if last.quality != quality || now.duration_since(last.at) >= policy.heartbeat {
            return true;
        }
        if quality == Quality::Bad {
            return false;
        }
        match (raw, last.raw) {
            (Some(Value::Bool(a)), Some(Value::Bool(b))) => a != b,
            _ => policy.deadband <= 0.0 || (eng - last.eng).abs() > policy.deadband,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(deadband: f64) -> EmitPolicy {
        EmitPolicy {
            heartbeat: Duration::from_secs(60),
            deadband,
            stale_after: None,
        }
    }

    fn value(v: i64) -> Reading {
        Reading::Value {
            raw: Value::Int(v),
            eng: v as f64,
            in_range: true,
        }
    }

    #[test]
    fn deadband_suppresses_small_moves_until_heartbeat() {
        let t0 = Instant::now();
        let p = policy(5.0);
        let mut s = TagState::default();
        assert_eq!(
            s.observe(value(100), t0, &p),
            Some((Some(Value::Int(100)), Quality::Good))
        );
        assert_eq!(s.observe(value(104), t0 + Duration::from_secs(1), &p), None);
        assert_eq!(s.observe(value(96), t0 + Duration::from_secs(2), &p), None);
        // Moved more than 5 from the last *emitted* value (100).
        assert!(
            s.observe(value(106), t0 + Duration::from_secs(3), &p)
                .is_some()
        );
        assert_eq!(
            s.observe(value(106), t0 + Duration::from_secs(62), &p),
            None
        );
        // Heartbeat: 60 s after the last emission.
        assert!(
            s.observe(value(106), t0 + Duration::from_secs(63), &p)
                .is_some()
        );
    }

    #[test]
    fn zero_deadband_sends_every_poll() {
        let t0 = Instant::now();
        let mut s = TagState::default();
        for i in 0..5 {
            let at = t0 + Duration::from_secs(i);
            assert!(s.observe(value(7), at, &policy(0.0)).is_some());
        }
    }

    #[test]
    fn bad_on_first_failure_then_on_heartbeat_then_good_on_recovery() {
        let t0 = Instant::now();
        let p = policy(1.0);
        let mut s = TagState::default();
        s.observe(value(1), t0, &p);
        let secs = |n| t0 + Duration::from_secs(n);
        assert_eq!(
            s.observe(Reading::Failed, secs(1), &p),
            Some((None, Quality::Bad))
        );
        assert_eq!(s.observe(Reading::Failed, secs(2), &p), None);
        assert_eq!(s.observe(Reading::Failed, secs(60), &p), None);
        assert_eq!(
            s.observe(Reading::Failed, secs(61), &p),
            Some((None, Quality::Bad))
        );
        // Same value as before the outage, but the quality changed: emitted.
        assert_eq!(
            s.observe(value(1), secs(62), &p),
            Some((Some(Value::Int(1)), Quality::Good))
        );
    }

    #[test]
    fn out_of_range_is_uncertain_and_keeps_its_value() {
        let mut s = TagState::default();
        let r = Reading::Value {
            raw: Value::Float(-5.0),
            eng: -5.0,
            in_range: false,
        };
        assert_eq!(
            s.observe(r, Instant::now(), &policy(0.0)),
            Some((Some(Value::Float(-5.0)), Quality::Uncertain))
        );
    }

    #[test]
    fn frozen_value_turns_stale_and_recovers_on_change() {
        let t0 = Instant::now();
        let p = EmitPolicy {
            stale_after: Some(Duration::from_secs(10)),
            ..policy(1000.0)
        };
        let secs = |n| t0 + Duration::from_secs(n);
        let mut s = TagState::default();
        assert_eq!(s.observe(value(5), t0, &p).unwrap().1, Quality::Good);
        assert_eq!(s.observe(value(5), secs(9), &p), None);
        // A failure in between does not reset the frozen clock.
        assert_eq!(
            s.observe(Reading::Failed, secs(9), &p).unwrap().1,
            Quality::Bad
        );
        assert_eq!(
            s.observe(value(5), secs(10), &p),
            Some((Some(Value::Int(5)), Quality::Stale))
        );
        assert_eq!(s.observe(value(5), secs(11), &p), None);
        assert_eq!(s.observe(value(6), secs(12), &p).unwrap().1, Quality::Good);
    }

    #[test]
    fn boolean_flip_is_always_reported() {
        let t0 = Instant::now();
        let p = policy(5.0);
        let b = |v| Reading::Value {
            raw: Value::Bool(v),
            eng: f64::from(u8::from(v)),
            in_range: true,
        };
        let mut s = TagState::default();
        assert!(s.observe(b(false), t0, &p).is_some());
        assert!(
            s.observe(b(false), t0 + Duration::from_secs(1), &p)
                .is_none()
        );
        assert!(
            s.observe(b(true), t0 + Duration::from_secs(2), &p)
                .is_some()
        );
    }

    proptest! {
        /// Whatever the readings, a tag is never silent longer than the heartbeat (at the
        /// poll resolution), emitted Bad samples have no value, and value samples a value.
        #[test]
        fn heartbeat_and_value_invariants(
            readings in prop::collection::vec(prop::option::of(-50i64..50), 1..200),
            deadband in 0.0f64..20.0,
        ) {
            let t0 = Instant::now();
            let p = EmitPolicy { heartbeat: Duration::from_secs(10), deadband, stale_after: Some(Duration::from_secs(5)) };
            let mut s = TagState::default();
            let mut last_emit = None;
            for (i, r) in readings.iter().enumerate() {
                let now = t0 + Duration::from_secs(i as u64);
                let reading = r.map_or(Reading::Failed, value);
                if let Some((v, q)) = s.observe(reading, now, &p) {
                    prop_assert_eq!(v.is_none(), q == Quality::Bad);
                    last_emit = Some(i);
                }
                prop_assert!(i - last_emit.unwrap() < 10);
            }
        }
    }
}
