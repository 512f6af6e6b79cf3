//! Site power and electronics, shared by every solar-powered device.
//!
//! * Battery `V = V₀ − 0.2 + 1.0·daylight + 0.03·n` (12 V lead-acid on a solar charger;
//!   daylight is a half sine from 06:00 to 18:00 US Central).
//! * Charger (panel) voltage `17 + 3·daylight` V while the sun is up, 0.3 V at night.
//! * Low-battery alarm below 11.8 V (never in normal operation).
//! * Enclosure temperature `ambient + 15·daylight + 5` °F (solar gain on the box).

use super::Eval;

const LOW_BATTERY_V: f64 = 11.8;

impl Eval<'_> {
    fn battery(&self) -> f64 {
        self.p.battery_nominal_v - 0.2 + self.daylight() + 0.03 * self.process("battery", 600.0)
    }

    pub fn site_metric(&self, metric: &str) -> Option<f64> {
        let v = match metric {
            "battery_voltage_v" => self.battery(),
            "battery_low_alarm" => f64::from(u8::from(self.battery() < LOW_BATTERY_V)),
            "charger_voltage_v" => {
                let sun = self.daylight();
                if sun > 0.0 { 17.0 + 3.0 * sun } else { 0.3 }
            }
            "enclosure_temperature_f" => self.ambient() + 15.0 * self.daylight() + 5.0,
            _ => return None,
        };
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use crate::model::params::{HOUR_MS, Lift, REFERENCE_EPOCH_MS, WellParams};
    use crate::model::testutil::device;
    use crate::model::timeline::WellHistory;
    use crate::model::{Eval, Role};

    #[test]
    fn battery_charges_in_daylight_and_never_alarms() {
        let p = WellParams::draw(5, "well-003", Lift::RodPump);
        let d = vec![device("gd", Role::GasDetector, &[])];
        let h = WellHistory::default();
        let at = |hour: i64| Eval {
            p: &p,
            h: &h,
            devices: &d,
            dev: 0,
            t: REFERENCE_EPOCH_MS + hour * HOUR_MS,
        };
        let v = |hour| at(hour).site_metric("battery_voltage_v").unwrap();
        assert!(v(18) > v(4) + 0.5);
        for hour in 0..48 {
            assert_eq!(at(hour).site_metric("battery_low_alarm"), Some(0.0));
        }
        assert!(at(4).site_metric("charger_voltage_v").unwrap() < 1.0);
        assert!(at(18).site_metric("charger_voltage_v").unwrap() > 17.0);
    }
}
