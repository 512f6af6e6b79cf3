// A well's analytics over a chosen period: daily production (oil, gas, water), the
// decline forecast as a fan chart (P10/P50/P90 with the EUR), and emissions by source and
// gas with CO2e. Each part reads its own endpoint (`…/wells/{well}/production`,
// `…/wells/{well}/decline`, `…/emissions?by=source`) and says in words why it has nothing
// to show (a well without enough history gets the API's 422 message). Operators may derive
// the period's production and the tenant's emissions again from the telemetry
// (`POST …/production/derive`, at most 92 days); viewers do not see that button.
import uPlot from 'uplot';
import { memo } from 'preact/compat';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, get, tenantPath } from '../api/client';
import { ErrorBox } from '../components/ErrorBox';
import { useAction, useLoad, value } from '../components/hooks';

interface Figure {
  quantity: 'oil' | 'gas' | 'water' | 'flared' | 'vented' | 'fuel';
  volume: number | null;
  unit: string;
  method: string;
  coverage: number;
  complete: boolean;
}
interface Production {
  well_id: number;
  from: string;
  to: string;
  days: { day: string; figures: Figure[] }[];
  not_derived: string[];
}
interface Range {
  p10: number;
  p50: number;
  p90: number;
  best_fit: number;
}
interface Decline {
  metric: string;
  rate_unit: string;
  volume_unit: string;
  chosen_model: string;
  history: { time: string; rate: number }[];
  forecast: { time: string; p10: number; p50: number; p90: number; best_fit: number }[];
  eur: Range;
  remaining: Range;
  end_of_life: { time: string; rate: number; limited_by: string };
  draws: number;
}
interface EmissionGroup {
  source_id: number | null;
  source_name: string | null;
  kind: string | null;
  well_id: number | null;
  site_id: number;
  masses: { co2_kg: number; ch4_kg: number; n2o_kg: number };
  co2e_kg: number;
  days_computed: number;
  days_expected: number;
  errors: string[];
}
interface Emissions {
  from: string;
  to: string;
  gwp: { set: string; ch4: number; n2o: number };
  groups: EmissionGroup[];
}

const DAY = 86_400_000;
const day = (d: Date) => d.toISOString().slice(0, 10);
const fmt = (v: number, digits = 1) => v.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** A uPlot chart built from `make` whenever `data` changes. */
function Plot({ label, make, data }: { label: string; make: (width: number) => uPlot.Options; data: uPlot.AlignedData }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const width = () => Math.max(280, el.clientWidth);
    const plot = new uPlot(make(width()), data, el);
    const resize = new ResizeObserver(() => plot.setSize({ width: width(), height: plot.height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [data]);
  return <div ref={host} class="chart" role="img" aria-label={label} />;
}

/** Not rendered again by the well page's live updates (its props do not change). */
export const WellAnalytics = memo(function WellAnalytics({
  tenant,
  well,
  site,
  canDerive,
}: {
  tenant: string;
  well: number;
  site: number | null;
  canDerive: boolean;
}) {
  const [from, setFrom] = useState(() => day(new Date(Date.now() - 90 * DAY)));
  const [to, setTo] = useState(() => day(new Date(Date.now() + DAY)));
  const [quantity, setQuantity] = useState<'oil' | 'gas'>('oil');
  const range = `from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
  const production = useLoad((s) => get<Production>(tenantPath(tenant, `/wells/${well}/production?${range}`), s), [tenant, well, range]);
  const decline = useLoad((s) => get<Decline>(tenantPath(tenant, `/wells/${well}/decline?metric=${quantity}`), s), [tenant, well, quantity]);
  const emissions = useLoad((s) => get<Emissions>(tenantPath(tenant, `/emissions?${range}&by=source`), s), [tenant, range]);
  const derive = useAction();
  const [derived, setDerived] = useState<string | null>(null);
  const deriveAgain = () =>
    derive.run(async () => {
      setDerived(null);
      const p = await api<Production>('POST', tenantPath(tenant, `/wells/${well}/production/derive?${range}`));
      setDerived(`Derived ${p.days.length} days again from the telemetry.`);
      production.reload();
      emissions.reload();
    });

  const daily = useMemo(() => {
    const p = production.data;
    if (!p) return null;
    const days = p.days.filter((d) => d.figures.some((f) => f.volume !== null));
    const pick = (q: Figure['quantity']) => days.map((d) => d.figures.find((f) => f.quantity === q)?.volume ?? null);
    const total = (q: Figure['quantity']) => pick(q).reduce<number>((n, v) => n + (v ?? 0), 0);
    return {
      data: [days.map((d) => Date.parse(`${d.day}T00:00:00Z`) / 1000), pick('oil'), pick('gas'), pick('water')] as uPlot.AlignedData,
      days: days.length,
      totals: { oil: total('oil'), gas: total('gas'), water: total('water') },
    };
  }, [production.data]);

  const fan = useMemo(() => {
    const d = decline.data;
    if (!d) return null;
    const times = [...new Set([...d.history.map((h) => Date.parse(h.time) / 1000), ...d.forecast.map((f) => Date.parse(f.time) / 1000)])].sort((a, b) => a - b);
    const at = new Map(times.map((t, i) => [t, i]));
    const col = () => times.map<number | null>(() => null);
    const [hist, p10, p50, p90] = [col(), col(), col(), col()];
    for (const h of d.history) hist[at.get(Date.parse(h.time) / 1000)!] = h.rate;
    for (const f of d.forecast) {
      const i = at.get(Date.parse(f.time) / 1000)!;
      p10[i] = f.p10;
      p50[i] = f.p50;
      p90[i] = f.p90;
    }
    return { decline: d, data: [times, hist, p10, p50, p90] as uPlot.AlignedData };
  }, [decline.data]);

  const sources = useMemo(() => {
    const e = emissions.data;
    if (!e) return null;
    // The well's own sources, and those of its site that belong to no well.
    const mine = e.groups.filter((g) => g.well_id === well || (g.well_id === null && g.site_id === site));
    const sum = (f: (g: EmissionGroup) => number) => mine.reduce((n, g) => n + f(g), 0);
    return {
      gwp: e.gwp,
      rows: mine,
      total: { co2: sum((g) => g.masses.co2_kg), ch4: sum((g) => g.masses.ch4_kg), n2o: sum((g) => g.masses.n2o_kg), co2e: sum((g) => g.co2e_kg) },
    };
  }, [emissions.data, well, site]);

  return (
    <section aria-labelledby="an-h" class="analytics">
      <h2 id="an-h">Production, decline and emissions</h2>
      <form class="inline" aria-label="Analytics period" onSubmit={(e) => e.preventDefault()}>
        <label>
          From
          <input type="date" required value={from} onChange={(e) => setFrom(value(e))} />
        </label>
        <label>
          To (exclusive)
          <input type="date" required value={to} onChange={(e) => setTo(value(e))} />
        </label>
        {canDerive ? (
          <button type="button" disabled={derive.busy} onClick={() => void deriveAgain()}>
            Derive production and emissions again
          </button>
        ) : null}
      </form>
      <ErrorBox error={derive.error} what="derive the period again" />
      {derived ? (
        <p role="status" data-testid="derived">
          {derived}
        </p>
      ) : null}

      <h3>Daily production</h3>
      <ErrorBox error={production.error} what="read the daily production" />
      {daily && daily.days === 0 ? <p data-testid="production-summary">No production figures in this period.</p> : null}
      {daily && daily.days > 0 ? (
        <>
          <p data-testid="production-summary">
            {daily.days} days: oil {fmt(daily.totals.oil)} bbl, gas {fmt(daily.totals.gas)} Mcf, water {fmt(daily.totals.water)} bbl.
          </p>
          <Plot
            label={`daily production chart, ${daily.days} days`}
            data={daily.data}
            make={(width) => ({
              width,
              height: 260,
              scales: { x: { time: true }, bbl: {}, mcf: {} },
              axes: [{}, { scale: 'bbl', label: 'bbl/day' }, { scale: 'mcf', label: 'Mcf/day', side: 1, grid: { show: false } }],
              series: [
                {},
                { label: 'Oil (bbl)', scale: 'bbl', stroke: '#2f855a', width: 2 },
                { label: 'Gas (Mcf)', scale: 'mcf', stroke: '#c05621', width: 2 },
                { label: 'Water (bbl)', scale: 'bbl', stroke: '#2b6cb0', width: 2 },
              ],
            })}
          />
        </>
      ) : null}

      <h3>Decline forecast</h3>
      <form class="inline" aria-label="Decline" onSubmit={(e) => e.preventDefault()}>
        <label>
          Stream
          <select value={quantity} onChange={(e) => setQuantity(value(e) as 'oil' | 'gas')}>
            <option value="oil">Oil</option>
            <option value="gas">Gas</option>
          </select>
        </label>
      </form>
      <ErrorBox error={decline.error} what="forecast the decline" />
      {fan ? (
        <>
          <p data-testid="eur">
            EUR ({fan.decline.volume_unit}): P90 {fmt(fan.decline.eur.p90, 0)}, P50 <strong>{fmt(fan.decline.eur.p50, 0)}</strong>, P10 {fmt(fan.decline.eur.p10, 0)}; remaining P50{' '}
            {fmt(fan.decline.remaining.p50, 0)}. Model {fan.decline.chosen_model.replace('_', ' ')}, {fan.decline.draws.toLocaleString()} draws; end of life{' '}
            {new Date(fan.decline.end_of_life.time).toLocaleDateString()} ({fan.decline.end_of_life.limited_by.replace('_', ' ')}).
          </p>
          <Plot
            label={`decline fan chart of ${fan.decline.metric}: history, P10, P50 and P90 forecast`}
            data={fan.data}
            make={(width) => ({
              width,
              height: 300,
              scales: { x: { time: true } },
              axes: [{}, { label: fan.decline.rate_unit }],
              series: [
                {},
                { label: 'History', stroke: '#1a202c', width: 1, points: { show: false } },
                { label: 'P10 (high)', stroke: '#90cdf4', width: 1, spanGaps: true },
                { label: 'P50', stroke: '#2b6cb0', width: 2, spanGaps: true },
                { label: 'P90 (low)', stroke: '#90cdf4', width: 1, spanGaps: true },
              ],
              bands: [{ series: [2, 4], fill: 'rgba(66, 153, 225, 0.2)' }],
            })}
          />
        </>
      ) : null}

      <h3>Emissions by source</h3>
      <ErrorBox error={emissions.error} what="read the emissions" />
      {sources && sources.rows.length === 0 ? <p data-testid="emissions-summary">No emission sources of this well or its site in this period.</p> : null}
      {sources && sources.rows.length > 0 ? (
        <>
          <p data-testid="emissions-summary">
            {fmt(sources.total.co2e / 1000, 2)} t CO2e ({sources.gwp.set}: CH4 × {sources.gwp.ch4}, N2O × {sources.gwp.n2o}).
          </p>
          <table aria-label="emissions by source" class="compact">
            <thead>
              <tr>
                <th scope="col">Source</th>
                <th scope="col">Kind</th>
                <th scope="col">CO2 (kg)</th>
                <th scope="col">CH4 (kg)</th>
                <th scope="col">N2O (kg)</th>
                <th scope="col">CO2e (t)</th>
                <th scope="col">Days</th>
              </tr>
            </thead>
            <tbody>
              {sources.rows.map((g) => (
                <tr key={g.source_id ?? g.source_name}>
                  <th scope="row">
                    {g.source_name ?? `source ${g.source_id}`}
                    {g.well_id === null ? <span class="muted"> (site)</span> : null}
                  </th>
                  <td>{g.kind?.replace('_', ' ') ?? '—'}</td>
                  <td>{fmt(g.masses.co2_kg)}</td>
                  <td>{fmt(g.masses.ch4_kg)}</td>
                  <td>{fmt(g.masses.n2o_kg, 3)}</td>
                  <td>{fmt(g.co2e_kg / 1000, 2)}</td>
                  <td>
                    {g.days_computed} of {g.days_expected}
                    {g.errors.length ? <span class="bad"> ({g.errors.join('; ')})</span> : null}
                  </td>
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <th scope="row">Total</th>
                <td />
                <td>{fmt(sources.total.co2)}</td>
                <td>{fmt(sources.total.ch4)}</td>
                <td>{fmt(sources.total.n2o, 3)}</td>
                <td>{fmt(sources.total.co2e / 1000, 2)}</td>
                <td />
              </tr>
            </tfoot>
          </table>
        </>
      ) : null}
    </section>
  );
});
