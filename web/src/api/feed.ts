// A tenant's open alerts, kept live by the server: the alert stream
// (`GET …/alerts/stream`, server-sent events, followed as `stream.ts` does).
//
// Order of work: open the stream first and load the list when it says `ready`, so no change
// between the list and the stream is missed; `resync` (the stream fell behind) loads the
// list again. Changes that arrive while a list is loading win over the list.
import { type ApiError, get, tenantPath } from './client';
import { type StreamStatus, follow } from './stream';
import type { Alert, Page } from './types';

export type FeedStatus = StreamStatus;

export interface FeedState {
  alerts: Alert[];
  status: FeedStatus;
  error: ApiError | null;
  loaded: boolean;
}

export class AlertFeed {
  private open = new Map<number, Alert>();
  private touched: Set<number> | null = null;
  private abort = new AbortController();
  private listeners = new Set<(s: FeedState) => void>();
  state: FeedState = { alerts: [], status: 'connecting', error: null, loaded: false };

  constructor(readonly tenant: string) {}

  subscribe(listener: (s: FeedState) => void): () => void {
    this.listeners.add(listener);
    listener(this.state);
    return () => this.listeners.delete(listener);
  }

  /** Applies an alert as the server now has it (from the stream or an action's answer). */
  apply(alert: Alert): void {
    this.touched?.add(alert.id);
    if (alert.state === 'resolved') this.open.delete(alert.id);
    else this.open.set(alert.id, alert);
    this.publish({});
  }

  start(): void {
    follow(tenantPath(this.tenant, '/alerts/stream'), 'the alert stream', this.abort.signal, {
      status: (status, error) => this.publish({ status, error }),
      event: (name, data) => {
        if (name === 'ready' || name === 'resync') void this.load();
        else if (name === 'alert') this.apply((JSON.parse(data) as { alert: Alert }).alert);
      },
    });
  }

  stop(): void {
    this.abort.abort();
    this.listeners.clear();
  }

  /** Reads every open alert again. */
  async load(): Promise<void> {
    this.touched = new Set();
    try {
      const page = await get<Page<Alert>>(tenantPath(this.tenant, '/alerts?state=open&limit=1000'), this.abort.signal);
      const next = new Map<number, Alert>();
      for (const a of page.items) next.set(a.id, a);
      for (const id of this.touched) {
        const live = this.open.get(id);
        if (live) next.set(id, live);
        else next.delete(id);
      }
      this.open = next;
      this.publish({ loaded: true, error: null });
    } catch (e) {
      if ((e as Error).name !== 'AbortError') this.publish({ error: e as ApiError });
    } finally {
      this.touched = null;
    }
  }

  private publish(change: Partial<FeedState>): void {
    const alerts = [...this.open.values()].sort((a, b) => b.id - a.id);
    this.state = { ...this.state, ...change, alerts };
    this.listeners.forEach((l) => l(this.state));
  }
}
