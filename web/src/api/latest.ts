// The latest value of a well's key metrics. The API has no "latest value" endpoint yet, so
// this reads the last hour in 1-minute buckets and keeps the newest bucket's mean (the
// fleet table says so in its column headers).
import { get, tenantPath } from './client';
import type { Telemetry } from './types';

export const KEY_METRICS = [
  { metric: 'tubing_pressure_psi', label: 'Tubing psi' },
  { metric: 'casing_pressure_psi', label: 'Casing psi' },
] as const;

export interface Latest {
  value: number;
  time: string;
}

export async function latest(tenant: string, well: number, metric: string, signal: AbortSignal): Promise<Latest | null> {
  const to = new Date(Date.now() + 60_000);
  const from = new Date(to.getTime() - 3_660_000);
  const q = new URLSearchParams({ metric, bucket: '1m', from: from.toISOString(), to: to.toISOString() });
  const t = await get<Telemetry>(tenantPath(tenant, `/wells/${well}/telemetry?${q}`), signal);
  let best: Latest | null = null;
  for (const s of t.series) {
    const last = s.buckets?.[s.buckets.length - 1];
    if (last && (!best || last.time > best.time)) best = { value: last.avg, time: last.time };
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
