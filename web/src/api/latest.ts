// Latest values, pushed by the server: `GET …/latest/stream` (server-sent events, followed
// as `stream.ts` does). The first event is a `snapshot` of every
// selected series; `latest` events carry only the series that changed (the server sends at
// most about one per second). A value replaces the one held for its series only when it
// is newer, so a snapshot re-read after a lag never moves a series back in time.
import { useEffect, useState } from 'preact/hooks';
import { type ApiError, tenantPath } from './client';
import { type StreamStatus, follow } from './stream';

export const KEY_METRICS = [
  { metric: 'tubing_pressure_psi', label: 'Tubing psi' },
  { metric: 'casing_pressure_psi', label: 'Casing psi' },
] as const;

export interface LatestValue {
  series_id: number;
  device_id: number;
  well_id: number | null;
  metric: string;
  unit: string;
  time: string;
  value: number | null;
  quality: 'good' | 'bad' | 'stale' | 'uncertain';
}

export type LiveStatus = StreamStatus;

export interface LatestState {
  /** By series id. */
  values: Map<number, LatestValue>;
  status: LiveStatus;
  error: ApiError | null;
  /** The snapshot arrived. */
  loaded: boolean;
  /** Updates applied since the stream opened (a `latest` event counts once). */
  updates: number;
}

export interface LatestSelection {
  well?: number;
  metrics?: readonly string[];
}

export class LatestStream {
  private abort = new AbortController();
  private listeners = new Set<(s: LatestState) => void>();
  private changeListeners = new Set<(changed: LatestValue[]) => void>();
  state: LatestState = { values: new Map(), status: 'connecting', error: null, loaded: false, updates: 0 };

  constructor(
    readonly tenant: string,
    readonly selection: LatestSelection,
  ) {}

  subscribe(listener: (s: LatestState) => void): () => void {
    this.listeners.add(listener);
    listener(this.state);
    return () => this.listeners.delete(listener);
  }

  /** Only the values that changed, as they are applied (for pages that update cells). */
  onChange(listener: (changed: LatestValue[]) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  start(): void {
    const q = new URLSearchParams();
    if (this.selection.well !== undefined) q.set('well', String(this.selection.well));
    if (this.selection.metrics?.length) q.set('metric', this.selection.metrics.join(','));
    const qs = q.toString();
    const url = tenantPath(this.tenant, `/latest/stream${qs ? `?${qs}` : ''}`);
    follow(url, 'the live values', this.abort.signal, {
      status: (status, error) => this.publish({ status, error }),
      event: (name, data) => {
        if (name !== 'snapshot' && name !== 'latest') return;
        const { values } = JSON.parse(data) as { values: LatestValue[] };
        this.apply(values, name === 'snapshot');
      },
    });
  }

  stop(): void {
    this.abort.abort();
    this.listeners.clear();
    this.changeListeners.clear();
  }

  private apply(incoming: LatestValue[], snapshot: boolean): void {
    const values = new Map(this.state.values);
    const changed: LatestValue[] = [];
    for (const v of incoming) {
      const held = values.get(v.series_id);
      if (!held || v.time > held.time) {
        values.set(v.series_id, v);
        changed.push(v);
      }
    }
    if (!changed.length && this.state.loaded) return;
    if (changed.length) this.changeListeners.forEach((l) => l(changed));
    this.publish({ values, loaded: true, updates: this.state.updates + (snapshot ? 0 : 1) });
  }

  private publish(change: Partial<LatestState>): void {
    this.state = { ...this.state, ...change };
    this.listeners.forEach((l) => l(this.state));
  }
}

/** The selection's latest values, live while the component is mounted. */
export function useLatest(tenant: string, selection: LatestSelection): LatestState {
  const key = `${tenant}|${selection.well ?? ''}|${selection.metrics?.join(',') ?? ''}`;
  const [state, setState] = useState<LatestState>(() => ({ values: new Map(), status: 'connecting', error: null, loaded: false, updates: 0 }));
  useEffect(() => {
    const stream = new LatestStream(tenant, selection);
    const off = stream.subscribe(setState);
    stream.start();
    return () => {
      off();
      stream.stop();
    };
    // The key names everything the selection holds.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  return state;
}

/** The newest good value of `metric` at `well` (over its devices), if any. */
export function newestGood(values: Map<number, LatestValue>, well: number, metric: string): LatestValue | null {
  let best: LatestValue | null = null;
  for (const v of values.values()) {
    if (v.well_id === well && v.metric === metric && v.value !== null && v.quality === 'good' && (!best || v.time > best.time)) best = v;
  }
  return best;
}

/**
 * The newest good value per (well, metric) over the wells' devices, each watched by its
 * own cell: a pushed update re-renders the cells whose value changed, not the page.
 */
export class WellValues {
  private best = new Map<string, LatestValue>();
  private watchers = new Map<string, Set<(v: LatestValue) => void>>();

  static key(well: number, metric: string): string {
    return `${well}/${metric}`;
  }

  get(well: number, metric: string): LatestValue | undefined {
    return this.best.get(WellValues.key(well, metric));
  }

  apply(changed: LatestValue[]): void {
    for (const v of changed) {
      if (v.well_id === null || v.value === null || v.quality !== 'good') continue;
      const key = WellValues.key(v.well_id, v.metric);
      const held = this.best.get(key);
      if (held && held.time >= v.time) continue;
      this.best.set(key, v);
      this.watchers.get(key)?.forEach((w) => w(v));
    }
  }

  watch(well: number, metric: string, watcher: (v: LatestValue) => void): () => void {
    const key = WellValues.key(well, metric);
    const set = this.watchers.get(key) ?? new Set();
    set.add(watcher);
    this.watchers.set(key, set);
    return () => set.delete(watcher);
  }
}
