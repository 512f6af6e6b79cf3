// One way to follow a server-sent-events stream of the API (the alert stream, the latest
// values): read with fetch() so it carries the Authorization header that EventSource
// cannot send; a 401 refreshes the session and reconnects with the new token; an answer
// the server will repeat (403, 404, 400) stops the stream with the API's error in words;
// anything else (network, server restart, a stream the server ended) reconnects after 2 s.
import { fetchEventSource } from '@microsoft/fetch-event-source';
import { ApiError, bearer, refreshSession } from './client';

export type StreamStatus = 'connecting' | 'live' | 'reconnecting' | 'stopped';

export interface StreamHandlers {
  /** The stream's status changed; `error` is set when it stopped for good. */
  status(status: StreamStatus, error: ApiError | null): void;
  /** One event: its name and its data. */
  event(name: string, data: string): void;
}

class Fatal extends Error {
  constructor(readonly error: ApiError) {
    super(error.message);
  }
}

/** Follows the stream at `url` until `signal` aborts; `what` names it in errors. */
export function follow(url: string, what: string, signal: AbortSignal, on: StreamHandlers): void {
  const headers: Record<string, string> = { accept: 'text/event-stream', authorization: bearer() ?? '' };
  void fetchEventSource(url, {
    headers,
    signal,
    openWhenHidden: true,
    onopen: async (response) => {
      if (response.ok) {
        on.status('live', null);
        return;
      }
      if (response.status === 401 && (await refreshSession())) {
        headers.authorization = bearer() ?? '';
        throw new Error('retry with the new token');
      }
      let error = new ApiError(response.status, 'stream', `${what} answered ${response.status}`);
      try {
        const body = (await response.json()).error;
        error = new ApiError(response.status, body.code, body.message);
      } catch {
        // keep the status line
      }
      throw new Fatal(error);
    },
    onmessage: (message) => on.event(message.event, message.data),
    onclose: () => {
      // The server ended the stream (a restart): reconnect.
      throw new Error('closed');
    },
    onerror: (error) => {
      if (error instanceof Fatal) {
        on.status('stopped', error.error);
        throw error;
      }
      headers.authorization = bearer() ?? '';
      on.status('reconnecting', null);
      return 2000;
    },
  }).catch(() => undefined);
}
