import type { ColumnDef, SortingState } from '@tanstack/react-table';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { KEY_METRICS, type LatestValue, LatestStream, type LiveStatus, WellValues } from '../api/latest';
import type { ApiError } from '../api/client';
import { all } from '../api/lists';
import type { Alert, Gateway, Well } from '../api/types';
import { DataTable } from '../components/DataTable';
import { ErrorBox } from '../components/ErrorBox';
import { Link } from '../components/Link';
import { SEVERITY_RANK, ago, num } from '../components/format';
import { navigate, wellPath } from '../router';
import { useFeed, useTenant } from '../tenant';

interface Row {
  well: Well;
  gatewaysOnline: number;
  gatewaysTotal: number;
  backlog: number;
  alerts: number;
  worst: string | null;
}

function alertsByWell(alerts: Alert[]): Map<number, Alert[]> {
  const m = new Map<number, Alert[]>();
  for (const a of alerts) if (a.well_id !== null) m.set(a.well_id, [...(m.get(a.well_id) ?? []), a]);
  return m;
}

/** Re-sorting by a live value happens at most this often (the server pushes about once a second). */
const RESORT_EVERY_MS = 1_000;

/** One latest value, re-rendered alone when it changes. */
function LiveCell({ cells, well, metric, loaded }: { cells: WellValues; well: number; metric: string; loaded: boolean }) {
  const [v, setV] = useState<LatestValue | undefined>(() => cells.get(well, metric));
  useEffect(() => {
    setV(cells.get(well, metric));
    return cells.watch(well, metric, setV);
  }, [cells, well, metric]);
  if (v && v.value !== null) return <span title={`at ${new Date(v.time).toLocaleString()}`}>{num(v.value)}</span>;
  return <span class="muted">{loaded ? 'none yet' : '…'}</span>;
}

export function Fleet() {
  const { tenant, feed } = useTenant();
  const { alerts } = useFeed(feed);
  const [wells, setWells] = useState<Well[] | null>(null);
  const [gateways, setGateways] = useState<Gateway[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  // Latest key values, pushed by the server (no polling). Each value cell watches its
  // own (well, metric): an update re-renders the cells that changed, not the tables.
  const cells = useMemo(() => new WellValues(), [tenant]);
  const [status, setStatus] = useState<LiveStatus>('connecting');
  const [loaded, setLoaded] = useState(false);
  const [liveError, setLiveError] = useState<ApiError | null>(null);
  // Sorted by a live value, the table re-sorts as values change: at most once a second,
  // and only when a value of the sorted metric changed (other updates touch cells only).
  const sortedBy = useRef<string | null>(null);
  const [resorts, setResorts] = useState(0);
  const onSort = useCallback((s: SortingState) => (sortedBy.current = s[0]?.id ?? null), []);
  useEffect(() => {
    const stream = new LatestStream(tenant, { metrics: KEY_METRICS.map((k) => k.metric) });
    let timer: ReturnType<typeof setTimeout> | undefined;
    let last = 0;
    stream.onChange((changed) => {
      cells.apply(changed);
      if (timer !== undefined || !changed.some((v) => v.metric === sortedBy.current)) return;
      timer = setTimeout(
        () => {
          timer = undefined;
          last = Date.now();
          setResorts((n) => n + 1);
        },
        Math.max(0, last + RESORT_EVERY_MS - Date.now()),
      );
    });
    stream.subscribe((s) => {
      setStatus(s.status);
      setLoaded(s.loaded);
      setLiveError(s.error);
    });
    stream.start();
    return () => {
      clearTimeout(timer);
      stream.stop();
    };
  }, [tenant, cells]);

  useEffect(() => {
    const abort = new AbortController();
    setError(null);
    Promise.all([all<Well>(tenant, '/wells', abort.signal), all<Gateway>(tenant, '/gateways', abort.signal)]).then(
      ([w, g]) => {
        setWells(w);
        setGateways(g);
      },
      (e) => (e as Error).name === 'AbortError' || setError(e),
    ).catch((e) => (e as Error).name === 'AbortError' || setError(e));
    return () => abort.abort();
  }, [tenant]);

  const base = useMemo<Row[]>(() => {
    if (!wells || !gateways) return [];
    const open = alertsByWell(alerts);
    return wells.map((well) => {
      const here = gateways.filter((g) => g.site.id === well.site.id);
      const mine = open.get(well.id) ?? [];
      const worst = mine.reduce<string | null>((w, a) => (w === null || SEVERITY_RANK[a.severity] > SEVERITY_RANK[w] ? a.severity : w), null);
      return {
        well,
        gatewaysOnline: here.filter((g) => g.status === 'online').length,
        gatewaysTotal: here.length,
        backlog: here.reduce((n, g) => n + (g.buffer?.pending_batches ?? 0), 0),
        alerts: mine.length,
        worst,
      };
    });
  }, [wells, gateways, alerts]);
  // `resorts`: a new array of the same rows makes the table sort again with the values of
  // now; the rows themselves are not rendered again, only moved (`stableRows`).
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const rows = useMemo(() => [...base], [base, resorts]);

  const wellColumns = useMemo<ColumnDef<Row, any>[]>(
    () => [
      {
        id: 'well',
        header: 'Well',
        accessorFn: (r) => r.well.name,
        cell: (c) => <Link href={wellPath(tenant, c.row.original.well.id)}>{c.getValue()}</Link>,
      },
      { id: 'api', header: 'API number', accessorFn: (r) => r.well.api_number },
      { id: 'site', header: 'Site', accessorFn: (r) => r.well.site.name },
      { id: 'status', header: 'Status', accessorFn: (r) => r.well.status },
      {
        id: 'gateways',
        header: 'Gateways online',
        accessorFn: (r) => (r.gatewaysTotal ? r.gatewaysOnline / r.gatewaysTotal : -1),
        cell: (c) => {
          const r = c.row.original;
          if (!r.gatewaysTotal) return <span class="muted">none at site</span>;
          return <span class={r.gatewaysOnline < r.gatewaysTotal ? 'bad' : 'good'}>{r.gatewaysOnline} / {r.gatewaysTotal}</span>;
        },
      },
      { id: 'backlog', header: 'Backlog (batches)', accessorFn: (r) => r.backlog },
      {
        id: 'alerts',
        header: 'Open alerts',
        accessorFn: (r) => r.alerts * 10 + (r.worst ? SEVERITY_RANK[r.worst] : 0),
        cell: (c) => {
          const r = c.row.original;
          return r.alerts ? <span class={`sev ${r.worst}`}>{r.alerts} ({r.worst})</span> : <span class="muted">0</span>;
        },
      },
      ...KEY_METRICS.map<ColumnDef<Row, any>>((k) => ({
        id: k.metric,
        header: `${k.label} (latest)`,
        // Sorting reads the values of the moment; a change of this metric re-sorts (above).
        // A well without a value yet sorts last either way (undefined, not null: null
        // would compare as zero).
        accessorFn: (r) => cells.get(r.well.id, k.metric)?.value ?? undefined,
        sortUndefined: 'last',
        cell: (c) => <LiveCell cells={cells} well={c.row.original.well.id} metric={k.metric} loaded={loaded} />,
      })),
    ],
    [tenant, cells, loaded],
  );

  const gatewayColumns = useMemo<ColumnDef<Gateway, any>[]>(
    () => [
      { id: 'id', header: 'Gateway', accessorFn: (g) => g.id },
      { id: 'site', header: 'Site', accessorFn: (g) => g.site.name },
      { id: 'status', header: 'Status', accessorFn: (g) => g.status, cell: (c) => <span class={`gw ${c.getValue()}`}>{c.getValue()}</span> },
      { id: 'seen', header: 'Last seen', accessorFn: (g) => g.last_seen ?? '', cell: (c) => ago(c.row.original.last_seen) },
      { id: 'pending', header: 'Backlog (batches)', accessorFn: (g) => g.buffer?.pending_batches ?? 0 },
      {
        id: 'oldest',
        header: 'Oldest unsent',
        accessorFn: (g) => g.buffer?.oldest_age_ms ?? 0,
        cell: (c) => (c.row.original.buffer?.pending_batches ? `${Math.round((c.row.original.buffer.oldest_age_ms ?? 0) / 1000)} s` : '—'),
      },
      { id: 'devices', header: 'Devices', accessorFn: (g) => g.device_count },
    ],
    [],
  );

  return (
    <>
      <h1>Fleet</h1>
      <p class="muted" data-testid="live-status">
        Latest values: {status === 'live' ? 'live' : status === 'stopped' ? 'stopped' : `${status}…`}
      </p>
      <ErrorBox error={error} what="load the fleet" />
      <ErrorBox error={liveError} what="follow the latest values" />
      {!wells && !error ? <p aria-busy="true">Loading wells…</p> : null}
      {wells ? (
        <section aria-labelledby="wells-h">
          <h2 id="wells-h">Wells</h2>
          <DataTable
            label="wells"
            data={rows}
            columns={wellColumns}
            initialSort={[{ id: 'alerts', desc: true }]}
            empty="This tenant has no wells yet."
            rowKey={(r) => String(r.well.id)}
            onOpen={(r) => navigate(wellPath(tenant, r.well.id))}
            onSort={onSort}
            stableRows
          />
        </section>
      ) : null}
      {gateways ? (
        <section aria-labelledby="gw-h">
          <h2 id="gw-h">Gateways</h2>
          <DataTable
            label="gateways"
            data={gateways}
            columns={gatewayColumns}
            initialSort={[{ id: 'status', desc: false }]}
            empty="This tenant has no gateways yet."
            rowKey={(g) => g.id}
          />
        </section>
      ) : null}
    </>
  );
}
