// A tenant's open alerts, kept live by the server: the alert stream
// (`GET …/alerts/stream`, server-sent events) read with fetch() so it can carry the
// Authorization header that EventSource cannot send.
//
// Order of work: open the stream first and load the list when it says `ready`, so no change
// between the list and the stream is missed; `resync` (the stream fell behind) loads the
// list again. Changes that arrive while a list is loading win over the list.
import { fetchEventSource } from '@microsoft/fetch-event-source';
import { ApiError, bearer, get, refreshSession, tenantPath } from './client';
import type { Alert, Page } from './types';

export type FeedStatus = 'connecting' | 'live' | 'reconnecting' | 'stopped';

export interface FeedState {
  alerts: Alert[];
  status: FeedStatus;
  error: ApiError | null;
  loaded: boolean;
}

class Fatal extends Error {}

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
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    const url = tenantPath(this.tenant, '/alerts/stream');
    headers.authorization = bearer() ?? '';
    void fetchEventSource(url, {
      headers,
      signal: this.abort.signal,
      openWhenHidden: true,
      onopen: async (response) => {
        if (response.ok) {
          this.publish({ status: 'live', error: null });
          return;
        }
        if (response.status === 401 && (await refreshSession())) {
          headers.authorization = bearer() ?? '';
          throw new Error('retry with the new token');
        }
        let message = `the alert stream answered ${response.status}`;
        try {
          message = (await response.json()).error.message;
        } catch {
          // keep the status line
        }
        throw new Fatal(message);
      },
      onmessage: (message) => {
        if (message.event === 'ready' || message.event === 'resync') void this.load();
        else if (message.event === 'alert') this.apply((JSON.parse(message.data) as { alert: Alert }).alert);
      },
      onclose: () => {
        // The server ended the stream (a restart): reconnect.
        throw new Error('closed');
      },
      onerror: (error) => {
        if (error instanceof Fatal) {
          this.publish({ status: 'stopped', error: new ApiError(0, 'stream', error.message) });
          throw error;
        }
        headers.authorization = bearer() ?? '';
        this.publish({ status: 'reconnecting' });
        return 2000;
      },
    }).catch(() => undefined);
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
