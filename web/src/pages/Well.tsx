// A well: one metric over a chosen range (rollups picked by range), with the well's alerts
// marked where they fired. Reads again when one of its alerts changes on the live stream.
// Its latest values are pushed by the server (`…/latest/stream?well=`): the table of
// latest values changes as telemetry is stored, and on the raw range the chart grows with
// them, without a reload or polling.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { get, tenantPath } from '../api/client';
import { type LatestValue, useLatest } from '../api/latest';
import type { Alert, MetricInfo, Page, Telemetry, Well } from '../api/types';
import { Chart, type Marker } from '../components/Chart';
import { ErrorBox } from '../components/ErrorBox';
import { Link } from '../components/Link';
import { can } from '../roles';
import { alertsPath } from '../router';
import { WellAnalytics } from './WellAnalytics';
import { WellOutlook } from './WellOutlook';
import { useFeed, useTenant } from '../tenant';

const RANGES = [
  { label: 'Last hour', ms: 3_600_000, bucket: 'raw' },
  { label: 'Last 6 hours', ms: 6 * 3_600_000, bucket: '1m' },
  { label: 'Last day', ms: 86_400_000, bucket: '1m' },
  { label: 'Last 7 days', ms: 7 * 86_400_000, bucket: '5m' },
  { label: 'Last 30 days', ms: 30 * 86_400_000, bucket: '1h' },
];

/** A sample's time: the time of day when it is from the last day, else date and time. */
function when(time: string): string {
  const d = new Date(time);
  return Date.now() - d.getTime() < 86_400_000 ? d.toLocaleTimeString() : d.toLocaleString();
}

export function WellPage({ well }: { well: number }) {
  const { tenant, feed, me } = useTenant();
  const { alerts: open } = useFeed(feed);
  const [info, setInfo] = useState<Well | null>(null);
  const [metrics, setMetrics] = useState<MetricInfo[] | null>(null);
  const [metric, setMetric] = useState<string>('');
  const [range, setRange] = useState(0);
  const [data, setData] = useState<Telemetry | null>(null);
  const [history, setHistory] = useState<Alert[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  const live = useLatest(tenant, { well });
  // Live samples of the charted series since the chart was read, by series id.
  const [grown, setGrown] = useState<Map<number, LatestValue[]>>(new Map());

  useEffect(() => {
    const abort = new AbortController();
    setError(null);
    Promise.all([
      get<Well>(tenantPath(tenant, `/wells/${well}`), abort.signal),
      get<{ metrics: MetricInfo[] }>(tenantPath(tenant, `/wells/${well}/metrics`), abort.signal),
    ]).then(([w, m]) => {
      setInfo(w);
      const usable = m.metrics.filter((x) => x.namespace !== 'vendor');
      setMetrics(usable);
      setMetric((current) => current || (usable.find((x) => x.metric === 'tubing_pressure_psi') ?? usable[0])?.metric || '');
    }, (e) => (e as Error).name === 'AbortError' || setError(e));
    return () => abort.abort();
  }, [tenant, well]);

  // This well's open alerts, as a key: a change on the stream reads chart and markers again.
  const alertKey = open.filter((a) => a.well_id === well).map((a) => `${a.id}:${a.state}:${a.last_fired_at}`).join(',');

  useEffect(() => {
    if (!metric) return;
    const abort = new AbortController();
    const r = RANGES[range];
    const to = new Date(Date.now() + 60_000);
    const from = new Date(to.getTime() - r.ms);
    const q = new URLSearchParams({ metric, bucket: r.bucket, from: from.toISOString(), to: to.toISOString() });
    Promise.all([
      get<Telemetry>(tenantPath(tenant, `/wells/${well}/telemetry?${q}`), abort.signal),
      get<Page<Alert>>(tenantPath(tenant, `/alerts?well=${well}&limit=200`), abort.signal),
    ]).then(([t, a]) => {
      setData(t);
      setGrown(new Map());
      setHistory(a.items);
      setError(null);
    }, (e) => (e as Error).name === 'AbortError' || setError(e));
    return () => abort.abort();
  }, [tenant, well, metric, range, alertKey, tick]);

  // On the raw range, each pushed sample of a charted series newer than its last point
  // extends the chart.
  useEffect(() => {
    if (!data || RANGES[range].bucket !== 'raw') return;
    setGrown((held) => {
      let next: Map<number, LatestValue[]> | null = null;
      for (const s of data.series) {
        const v = [...live.values.values()].find((x) => x.series_id === s.series_id);
        if (!v || v.value === null) continue;
        const mine = held.get(s.series_id) ?? [];
        const last = mine.length ? mine[mine.length - 1].time : s.samples?.[s.samples.length - 1]?.time;
        const at = Date.parse(v.time);
        // Only inside the chart's range (a well's newest sample may be months old).
        if (at < Date.parse(data.from) || at >= Date.parse(data.to)) continue;
        if (last && at <= Date.parse(last)) continue;
        next ??= new Map(held);
        next.set(s.series_id, [...mine, v]);
      }
      return next ?? held;
    });
  }, [live.values, data, range]);

  const markers = useMemo<Marker[]>(
    () => history.map((a) => ({ time: Date.parse(a.started_at) / 1000, label: a.summary, critical: a.severity === 'critical' })),
    [history],
  );

  const chart = useMemo(() => {
    if (!data) return null;
    const times = new Set<number>();
    const bySeries = data.series.map((s) => {
      const points = new Map<number, number | null>();
      for (const p of s.samples ?? []) points.set(Date.parse(p.time) / 1000, p.value);
      for (const p of s.buckets ?? []) points.set(Date.parse(p.time) / 1000, p.avg);
      for (const p of grown.get(s.series_id) ?? []) points.set(Date.parse(p.time) / 1000, p.value);
      points.forEach((_, t) => times.add(t));
      return { label: s.device, points };
    });
    const axis = [...times].sort((a, b) => a - b);
    const series = bySeries.map((s) => ({ label: s.label, values: axis.map((t) => s.points.get(t) ?? null) }));
    // The newest value of any series, shown in words beside the chart.
    let latest: { time: number; value: number } | null = null;
    for (const s of series) {
      for (let i = axis.length - 1; i >= 0; i--) {
        const v = s.values[i];
        if (v !== null) {
          if (!latest || axis[i] > latest.time) latest = { time: axis[i], value: v };
          break;
        }
      }
    }
    return { times: axis, series, markers, latest };
  }, [data, markers, grown]);

  // The well's latest values by metric (the newest over its devices), pushed.
  const latestRows = useMemo(() => {
    const best = new Map<string, LatestValue>();
    for (const v of live.values.values()) {
      const held = best.get(v.metric);
      if (!held || v.time > held.time) best.set(v.metric, v);
    }
    return [...best.values()].filter((v) => !v.metric.startsWith('vendor:')).sort((a, b) => a.metric.localeCompare(b.metric));
  }, [live.values]);
  const current = latestRows.find((v) => v.metric === metric && v.value !== null);

  return (
    <>
      <h1>{info ? `${info.name}` : `Well ${well}`}</h1>
      {info ? (
        <p class="muted">
          {[`API ${info.api_number}`, info.site.name, [info.field, [info.county, info.state].filter(Boolean).join(' ')].filter(Boolean).join(', '), info.status]
            .filter(Boolean)
            .join(' · ')}
        </p>
      ) : null}
      <ErrorBox error={error} what="load this well" />
      {metrics && metrics.length === 0 ? <p>No metrics reported for this well yet.</p> : null}
      {metrics && metrics.length > 0 ? (
        <form class="inline" onSubmit={(e) => { e.preventDefault(); setTick((t) => t + 1); }}>
          <label>
            Metric
            <select value={metric} onChange={(e) => setMetric((e.target as HTMLSelectElement).value)}>
              {metrics.map((m) => <option key={m.metric} value={m.metric}>{m.metric} ({m.unit})</option>)}
            </select>
          </label>
          <label>
            Range
            <select value={range} onChange={(e) => setRange(Number((e.target as HTMLSelectElement).value))}>
              {RANGES.map((r, i) => <option key={r.label} value={i}>{r.label}</option>)}
            </select>
          </label>
          <button type="submit">Refresh</button>
        </form>
      ) : null}
      <ErrorBox error={live.error} what="follow this well's latest values" />
      {current ? (
        <p data-testid="latest-value" aria-live="polite">
          Latest {current.metric}: <strong>{current.value!.toFixed(2)} {current.unit}</strong>{' '}
          <span class="muted">at {when(current.time)}</span>
        </p>
      ) : chart?.latest && data ? (
        <p data-testid="latest-value">
          Latest {data.metric}: <strong>{chart.latest.value.toFixed(2)} {data.unit}</strong>{' '}
          <span class="muted">at {new Date(chart.latest.time * 1000).toLocaleTimeString()}</span>
        </p>
      ) : null}
      {chart && data ? (
        chart.times.length ? (
          <Chart title={`${data.metric} (${data.unit})`} unit={data.unit} times={chart.times} series={chart.series} markers={chart.markers} />
        ) : (
          <p>No {data.metric} data in this range.</p>
        )
      ) : null}
      {latestRows.length ? (
        <section aria-labelledby="wl-h">
          <h2 id="wl-h">
            Latest values <span class="muted small" data-testid="well-live-status">({live.status === 'live' ? 'live' : live.status})</span>
          </h2>
          <table aria-label="latest values" class="compact">
            <thead>
              <tr>
                <th scope="col">Metric</th>
                <th scope="col">Value</th>
                <th scope="col">Quality</th>
                <th scope="col">At</th>
              </tr>
            </thead>
            <tbody>
              {latestRows.map((v) => (
                <tr key={v.metric}>
                  <th scope="row">{v.metric}</th>
                  <td>{v.value === null ? '—' : `${v.value.toFixed(2)} ${v.unit}`}</td>
                  <td>{v.quality}</td>
                  <td>{when(v.time)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ) : null}
      <WellAnalytics tenant={tenant} well={well} site={info?.site.id ?? null} canDerive={can(me, tenant, 'operator')} />
      <WellOutlook tenant={tenant} well={well} />
      {history.length ? (
        <section aria-labelledby="wa-h">
          <h2 id="wa-h">Alerts at this well</h2>
          <ul>
            {history.map((a) => (
              <li key={a.id}>
                <Link href={alertsPath(tenant, a.id)}>{a.summary || a.kind}</Link> <span class={`sev ${a.severity}`}>{a.severity}</span>{' '}
                <span class="muted">{a.state}, {new Date(a.started_at).toLocaleString()}</span>
              </li>
            ))}
          </ul>
        </section>
      ) : null}
    </>
  );
}
