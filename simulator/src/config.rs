//! Fleet configuration (TOML): how many wells, which devices each well has, the seed, the
//! clock and the failure plan.
//!
//! Every field has a default, so an empty file is a valid ten-well fleet. Unknown keys are
//! rejected. Durations are humantime strings (`"90s"`, `"2h"`), the clock origin an RFC 3339
//! timestamp. See `simulator/examples/fleet.toml` for a commented example.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::fault::FailureKind;

/// Most devices a well may have (Modbus unit ids 1..=247).
pub const MAX_DEVICES_PER_WELL: usize = 247;

/// The fleet to simulate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// Seed of every random draw (well parameters, noise, failure schedule).
    pub seed: u64,
    /// Number of wells; each gets its own TCP listener.
    pub wells: usize,
    /// Well names are `"{well_prefix}-{n:03}"`, n from 1.
    pub well_prefix: String,
    /// Firmware profile ids of the devices on every well, in unit-id order (unit ids 1, 2,
    /// ...). An entry `"a|b|c"` picks one of the alternatives per well from the seed, e.g.
    /// `"rod-pump-controller|esp-drive|plunger-lift-controller"` for a mixed-lift fleet.
    pub devices_per_well: Vec<String>,
    /// Simulated seconds per wall-clock second (1.0 = real time; 60 = a minute per second).
    pub time_scale: f64,
    /// Instant at which simulated time equals wall-clock time (RFC 3339, e.g.
    /// `"2026-11-01T00:00:00Z"`). Default: the start of the simulator. Only matters when
    /// `time_scale` is not 1; it also starts the failure schedule.
    #[serde(with = "humantime_serde")]
    pub clock_origin: Option<SystemTime>,
    /// TCP port of the first well; well `i` (0-based) listens on `base_port + i`. 0 = an
    /// ephemeral port per well.
    pub base_port: u16,
    /// Directory of extra profile files (`<id>.toml`); they take precedence over the
    /// built-in profiles with the same id.
    pub profile_dir: Option<PathBuf>,
    /// Seeded failure schedule.
    pub failures: FailurePlan,
}

/// How often and how the seeded schedule breaks things.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailurePlan {
    /// Expected scheduled failures per device per simulated day; 0 disables the schedule.
    /// At most one failure per schedule slot (`max(6 h, 2 × max_duration)`) per device.
    pub rate_per_day: f64,
    /// Kinds the schedule draws from (process kinds only hit lift equipment).
    pub kinds: Vec<FailureKind>,
    /// Simulated time after the clock origin covered by the schedule.
    #[serde(with = "humantime_serde")]
    pub horizon: Duration,
    /// Shortest scheduled failure (simulated time).
    #[serde(with = "humantime_serde")]
    pub min_duration: Duration,
    /// Longest scheduled failure (simulated time).
    #[serde(with = "humantime_serde")]
    pub max_duration: Duration,
    /// Response delay of scheduled `slow_response` failures (wall-clock time).
    #[serde(with = "humantime_serde")]
    pub slow_delay: Duration,
    /// Exception codes scheduled `exception` failures pick from.
    pub exception_codes: Vec<u8>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            seed: 1,
            wells: 10,
            well_prefix: "well".to_owned(),
            devices_per_well: vec![
                "rod-pump-controller".to_owned(),
                "gas-flow-computer".to_owned(),
                "tank-gauge".to_owned(),
                "gas-detector".to_owned(),
            ],
            time_scale: 1.0,
            clock_origin: None,
            base_port: 0,
            profile_dir: None,
            failures: FailurePlan::default(),
        }
    }
}

impl Default for FailurePlan {
    fn default() -> Self {
        FailurePlan {
            rate_per_day: 0.0,
            kinds: FailureKind::ALL.to_vec(),
            horizon: Duration::from_secs(7 * 86_400),
            min_duration: Duration::from_secs(5 * 60),
            max_duration: Duration::from_secs(2 * 3600),
            slow_delay: Duration::from_secs(2),
            exception_codes: vec![0x06, 0x04],
        }
    }
}

impl FleetConfig {
    /// Parses TOML text and validates it.
    pub fn from_toml(text: &str) -> Result<FleetConfig, SimError> {
        let cfg: FleetConfig = toml::from_str(text).map_err(|e| SimError::Config {
            message: e.to_string().trim_end().to_owned(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a TOML file.
    pub fn load(path: &Path) -> Result<FleetConfig, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            path: path.to_owned(),
            source,
        })?;
        FleetConfig::from_toml(&text).map_err(|e| match e {
            SimError::Config { message } => SimError::Config {
                message: format!("{}: {message}", path.display()),
            },
            other => other,
        })
    }

    /// Checks the ranges and relations the TOML types cannot express.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |message: String| Err(SimError::Config { message });
        if self.wells == 0 {
            return bad("wells must be at least 1".into());
        }
        if self.devices_per_well.is_empty() || self.devices_per_well.len() > MAX_DEVICES_PER_WELL {
            return bad(format!(
                "devices_per_well must list 1..={MAX_DEVICES_PER_WELL} profile ids, got {}",
                self.devices_per_well.len()
            ));
        }
        if let Some(entry) = self
            .devices_per_well
            .iter()
            .find(|e| e.split('|').any(|alt| alt.trim().is_empty()))
        {
            return bad(format!(
                "devices_per_well entry {entry:?} has an empty profile id"
            ));
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return bad(format!(
                "time_scale must be a positive number, got {}",
                self.time_scale
            ));
        }
        if self.base_port != 0 && usize::from(self.base_port) + self.wells - 1 > 65_535 {
            return bad(format!(
                "base_port {} + {} wells runs past port 65535",
                self.base_port, self.wells
            ));
        }
        self.failures.validate()
    }
}

impl FailurePlan {
    fn validate(&self) -> Result<(), SimError> {
        let bad = |message: String| Err(SimError::Config { message });
        if !(self.rate_per_day.is_finite() && self.rate_per_day >= 0.0) {
            return bad(format!(
                "failures.rate_per_day must be >= 0, got {}",
                self.rate_per_day
            ));
        }
        if self.min_duration.is_zero() || self.min_duration > self.max_duration {
            return bad(format!(
                "failures: need 0 < min_duration ({:?}) <= max_duration ({:?})",
                self.min_duration, self.max_duration
            ));
        }
        if self.rate_per_day > 0.0 && self.kinds.is_empty() {
            return bad("failures.kinds is empty but rate_per_day > 0".into());
        }
        if self.kinds.contains(&FailureKind::Exception)
            && (self.exception_codes.is_empty() || self.exception_codes.contains(&0))
        {
            return bad("failures.exception_codes must be non-empty and non-zero".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default_fleet() {
        assert_eq!(FleetConfig::from_toml("").unwrap(), FleetConfig::default());
    }

    #[test]
    fn shipped_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet.toml");
        let cfg = FleetConfig::load(&path).unwrap();
        assert!(cfg.wells >= 1);
        assert!(cfg.failures.rate_per_day > 0.0);
        assert!(cfg.devices_per_well.iter().any(|d| d.contains('|')));
    }

    #[test]
    fn durations_and_origin_parse() {
        let cfg = FleetConfig::from_toml(
            r#"
            clock_origin = "2026-11-01T00:00:00Z"
            [failures]
            rate_per_day = 1.5
            min_duration = "90s"
            max_duration = "3h"
            kinds = ["pump_off", "device_silent"]
            "#,
        )
        .unwrap();
        assert_eq!(cfg.failures.min_duration, Duration::from_secs(90));
        assert_eq!(
            cfg.failures.kinds,
            vec![FailureKind::PumpOff, FailureKind::DeviceSilent]
        );
        let origin = cfg
            .clock_origin
            .unwrap()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(origin.as_secs(), 1_793_491_200);
    }

    #[test]
    fn bad_configs_are_rejected_with_reasons() {
        let cases = [
            ("wellz = 3", "unknown field"),
            ("wells = 0", "wells must be at least 1"),
            ("time_scale = 0.0", "time_scale"),
            ("devices_per_well = []", "devices_per_well"),
            ("devices_per_well = [\"a|\"]", "empty profile id"),
            ("base_port = 65530\nwells = 10", "65535"),
            ("[failures]\nrate_per_day = -1.0", "rate_per_day"),
            (
                "[failures]\nmin_duration = \"3h\"\nmax_duration = \"1h\"",
                "min_duration",
            ),
            ("[failures]\nkinds = [\"meltdown\"]", "unknown variant"),
            ("[failures]\nexception_codes = []", "exception_codes"),
            ("[failures]\nhorizon = \"soon\"", "horizon"),
        ];
        for (text, needle) in cases {
            let err = FleetConfig::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
