// What the cloud's models serve (failure risk, production gaps, emissions forecasts), as
// the API's JSON, and the words and figures the pages show of it.
import { num } from '../components/format';

/** A value with its interval. */
export interface Band {
  low: number;
  p50: number;
  high: number;
}

/** `GET …/failure-risk` items and `…/wells/{well}/failure-risk`'s `risk`. */
export interface Risk {
  well_id: number;
  day: string;
  lift: string;
  p7: number;
  p14: number;
  p30: number;
  factors: { feature: string; words: string }[];
  model_version: number;
}

/** `GET …/production-gaps` items and `…/wells/{well}/production-gap`'s `gap`. */
export interface Gap {
  well_id: number;
  as_of: string;
  actual_bbl_per_day: number;
  expected_bbl_per_day: Band;
  gap_bbl_per_day: Band;
  category: string;
  opportunities: { cause: string; evidence: string; uplift_bbl_per_day: number; uplift_dollars_per_day: number }[];
  uplift_dollars_per_day: number;
  model_version: string;
}

/** One horizon of an emissions forecast. */
export interface Horizon {
  days: number;
  masses: { ch4_kg: Band; co2e_kg?: Band };
  intensity: { kg_ch4_per_boe: Band | null; percent_of_gas_produced: Band | null } | null;
}

/** `GET …/emissions-forecast` items and `…/wells/{well}/emissions-forecast`'s `forecast`. */
export interface EmissionsForecast {
  id: number;
  start_day: string;
  horizons: Horizon[];
  model_version: string;
  gwp?: { set: string };
}

export const pct = (p: number) => `${num(100 * p, 1)} %`;
/** "P50 (low to high)". */
export const band = (b: Band, digits = 1, scale = 1) => `${num(b.p50 / scale, digits)} (${num(b.low / scale, digits)} to ${num(b.high / scale, digits)})`;

export const LIFT: Record<string, string> = { rod_pump: 'rod pump', esp: 'ESP', plunger_lift: 'plunger lift' };
export const CATEGORY: Record<string, string> = {
  underperforming: 'Underperforming',
  on_target: 'On target',
  over: 'Above expected',
  unknown: 'Not enough data to say',
};
export const CAUSE: Record<string, string> = {
  downtime: 'Downtime',
  pump_off_control_too_aggressive: 'Pump-off control too aggressive',
  plunger_cycle_short: 'Plunger cycle short',
  choke: 'Choke',
  unexplained: 'Unexplained',
};
