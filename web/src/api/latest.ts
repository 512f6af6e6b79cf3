// The latest value of a well's key metrics. The API has no "latest value" endpoint yet, so
// this reads the raw samples of the last 15 minutes (following `next_from` when the
// response was cut) and keeps the newest good one. Rollups are not used: they lag behind
// the raw data by up to a maintenance interval.
import { get, tenantPath } from './client';
import type { Telemetry } from './types';

export const KEY_METRICS = [
  { metric: 'tubing_pressure_psi', label: 'Tubing psi' },
  { metric: 'casing_pressure_psi', label: 'Casing psi' },
] as const;

export const LATEST_WINDOW_MIN = 15;

export interface Latest {
  value: number;
  time: string;
}

export async function latest(tenant: string, well: number, metric: string, signal: AbortSignal): Promise<Latest | null> {
  const to = new Date(Date.now() + 60_000).toISOString();
  let from: string | null = new Date(Date.now() - LATEST_WINDOW_MIN * 60_000).toISOString();
  let best: Latest | null = null;
  for (let page = 0; from && page < 20; page++) {
    const q = new URLSearchParams({ metric, bucket: 'raw', from, to });
    const t: Telemetry = await get<Telemetry>(tenantPath(tenant, `/wells/${well}/telemetry?${q}`), signal);
    for (const s of t.series) {
      for (const p of s.samples ?? []) {
        if (p.value !== null && p.quality === 'good' && (!best || p.time >= best.time)) best = { value: p.value, time: p.time };
      }
    }
    from = t.next_from;
  }
  return best;
}

/** Runs `work` over `items`, at most `width` at a time. */
export async function inBatches<T>(items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
}
