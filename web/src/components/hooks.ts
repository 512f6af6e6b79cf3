// Loading and acting on the API from a page: one pattern for every admin page.
import { useCallback, useEffect, useState } from 'preact/hooks';

/** Loads on mount and when `deps` change; `reload()` loads again (after an action). */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [round, setRound] = useState(0);
  useEffect(() => {
    const abort = new AbortController();
    setError(null);
    load(abort.signal).then(
      (d) => abort.signal.aborted || setData(d),
      (e) => abort.signal.aborted || setError(e),
    );
    return () => abort.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, round]);
  const reload = useCallback(() => setRound((r) => r + 1), []);
  return { data, error, reload };
}

/** One action at a time: `busy` while it runs, its error kept to be shown in words. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = useCallback(async <T,>(action: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(null);
    try {
      return await action();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, setError };
}

/** The value of an input's event, for `onInput`. */
export const value = (e: Event) => (e.target as HTMLInputElement).value;
