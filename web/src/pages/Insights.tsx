// The fleet as the tenant's models see it, ranked, from the cloud's caches: wells by their
// risk of a failure within 30 days (`…/failure-risk`), by the dollars of their production
// opportunities (`…/production-gaps`), and by their forecast CO2e over the next 30 days
// (`…/emissions-forecast`). Each row links to the well's page, where its outlook is in
// full; an empty list says why in words (no model trained yet, nothing assessed yet).
import type { ColumnDef } from '@tanstack/react-table';
import { useMemo } from 'preact/hooks';
import { get, tenantPath } from '../api/client';
import { all } from '../api/lists';
import { type EmissionsForecast, type Gap, type Risk, band, CATEGORY, CAUSE, LIFT, pct } from '../api/ml';
import type { Well } from '../api/types';
import { DataTable } from '../components/DataTable';
import { ErrorBox } from '../components/ErrorBox';
import { num } from '../components/format';
import { useLoad } from '../components/hooks';
import { Link } from '../components/Link';
import { wellPath } from '../router';
import { useTenant } from '../tenant';

export function Insights() {
  const { tenant } = useTenant();
  const wells = useLoad((s) => all<Well>(tenant, '/wells', s), [tenant]);
  const risk = useLoad((s) => get<{ items: Risk[] }>(tenantPath(tenant, '/failure-risk?limit=100'), s), [tenant]);
  const gaps = useLoad((s) => get<{ price_per_bbl: number; items: Gap[] }>(tenantPath(tenant, '/production-gaps?limit=100'), s), [tenant]);
  const emissions = useLoad(
    (s) => get<{ items: EmissionsForecast[] }>(tenantPath(tenant, '/emissions-forecast?by=well&horizon=30&limit=100'), s),
    [tenant],
  );
  // The tables wait for the names: TanStack Table caches a row's values per column id, so
  // a column whose names arrived later would keep showing the ids.
  const names = useMemo(() => new Map((wells.data ?? []).map((w) => [w.id, w.name])), [wells.data]);
  const wellColumn = <T extends { well_id?: number; id?: number }>(): ColumnDef<T, any> => ({
    id: 'well',
    header: 'Well',
    accessorFn: (r) => names.get(r.well_id ?? r.id ?? 0) ?? `well ${r.well_id ?? r.id}`,
    cell: (c) => <Link href={wellPath(tenant, c.row.original.well_id ?? c.row.original.id ?? 0)}>{c.getValue()}</Link>,
  });

  const riskColumns = useMemo<ColumnDef<Risk, any>[]>(
    () => [
      wellColumn<Risk>(),
      { id: 'lift', header: 'Lift', accessorFn: (r) => LIFT[r.lift] ?? r.lift },
      { id: 'p7', header: '7 days', accessorFn: (r) => r.p7, cell: (c) => pct(c.getValue()) },
      { id: 'p14', header: '14 days', accessorFn: (r) => r.p14, cell: (c) => pct(c.getValue()) },
      { id: 'p30', header: '30 days', accessorFn: (r) => r.p30, cell: (c) => pct(c.getValue()) },
      { id: 'factor', header: 'First factor', accessorFn: (r) => r.factors[0]?.words ?? '—' },
      { id: 'model', header: 'Model', accessorFn: (r) => r.model_version },
    ],
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [names, tenant],
  );
  const gapColumns = useMemo<ColumnDef<Gap, any>[]>(
    () => [
      wellColumn<Gap>(),
      { id: 'category', header: 'Category', accessorFn: (g) => CATEGORY[g.category] ?? g.category },
      { id: 'actual', header: 'Making (bbl/d)', accessorFn: (g) => g.actual_bbl_per_day, cell: (c) => num(c.getValue()) },
      { id: 'expected', header: 'Expected (bbl/d, 90 %)', accessorFn: (g) => g.expected_bbl_per_day.p50, cell: (c) => band(c.row.original.expected_bbl_per_day) },
      { id: 'gap', header: 'Gap (bbl/d, 90 %)', accessorFn: (g) => g.gap_bbl_per_day.p50, cell: (c) => band(c.row.original.gap_bbl_per_day) },
      { id: 'cause', header: 'First cause', accessorFn: (g) => (g.opportunities[0] ? (CAUSE[g.opportunities[0].cause] ?? g.opportunities[0].cause) : '—') },
      { id: 'uplift', header: 'Uplift ($/d)', accessorFn: (g) => g.uplift_dollars_per_day, cell: (c) => num(c.getValue(), 0) },
      { id: 'model', header: 'Model', accessorFn: (g) => g.model_version },
    ],
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [names, tenant],
  );
  const emissionColumns = useMemo<ColumnDef<EmissionsForecast, any>[]>(
    () => [
      wellColumn<EmissionsForecast>(),
      {
        id: 'co2e',
        header: 'CO2e, 30 days (t, P50 and P90 to P10)',
        accessorFn: (f) => f.horizons[0]?.masses.co2e_kg?.p50 ?? 0,
        cell: (c) => (c.row.original.horizons[0]?.masses.co2e_kg ? band(c.row.original.horizons[0].masses.co2e_kg, 2, 1000) : '—'),
      },
      { id: 'ch4', header: 'CH4, 30 days (kg)', accessorFn: (f) => f.horizons[0]?.masses.ch4_kg.p50 ?? 0, cell: (c) => num(c.getValue(), 0) },
      {
        id: 'intensity',
        header: 'kg CH4 per BOE',
        accessorFn: (f) => f.horizons[0]?.intensity?.kg_ch4_per_boe?.p50 ?? undefined,
        sortUndefined: 'last',
        cell: (c) => (c.getValue() === undefined ? '—' : num(c.getValue(), 3)),
      },
      { id: 'model', header: 'Model', accessorFn: (f) => f.model_version },
    ],
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [names, tenant],
  );

  return (
    <>
      <h1>Insights</h1>
      <p class="muted">What the tenant's models predict, recomputed when new data arrives; each well's page has its outlook in full.</p>
      <ErrorBox error={wells.error} what="read the wells" />

      <section aria-labelledby="in-risk">
        <h2 id="in-risk">Failure risk</h2>
        <ErrorBox error={risk.error} what="read the failure risk" />
        {risk.data && wells.data ? (
          <DataTable
            label="failure risk"
            data={risk.data.items}
            columns={riskColumns}
            initialSort={[{ id: 'p30', desc: true }]}
            rowKey={(r) => String(r.well_id)}
            empty="No predictions: no failure-risk model is trained for this tenant yet, or no lift well has 44 days of rollups."
          />
        ) : null}
      </section>

      <section aria-labelledby="in-gaps">
        <h2 id="in-gaps">Production opportunities</h2>
        <ErrorBox error={gaps.error} what="read the production gaps" />
        {gaps.data && wells.data ? (
          <>
            <p class="muted">Dollars at ${num(gaps.data.price_per_bbl, 0)}/bbl.</p>
            <DataTable
              label="production gaps"
              data={gaps.data.items}
              columns={gapColumns}
              initialSort={[{ id: 'uplift', desc: true }]}
              rowKey={(g) => String(g.well_id)}
              empty="Nothing assessed yet: gaps are assessed every hour for wells with production history."
            />
          </>
        ) : null}
      </section>

      <section aria-labelledby="in-emissions">
        <h2 id="in-emissions">Emissions forecast</h2>
        <ErrorBox error={emissions.error} what="read the emissions forecasts" />
        {emissions.data && wells.data ? (
          <DataTable
            label="emissions forecasts"
            data={emissions.data.items}
            columns={emissionColumns}
            initialSort={[{ id: 'co2e', desc: true }]}
            rowKey={(f) => String(f.id)}
            empty="No well forecast: forecasts need a well's emission sources; each well's page says why it has none."
          />
        ) : null}
      </section>
    </>
  );
}
