// A tenant's plan, quotas and daily usage (`/tenants/{t}/usage`, or `/admin/tenants/{t}/usage`
// on the platform page).
import type { ColumnDef } from '@tanstack/react-table';
import { useMemo, useState } from 'preact/hooks';
import { get, tenantPath } from '../../api/client';
import type { Quotas, Usage, UsageDay } from '../../api/types';
import { DataTable } from '../../components/DataTable';
import { ErrorBox } from '../../components/ErrorBox';
import { useLoad, value } from '../../components/hooks';
import { useTenant } from '../../tenant';

const QUOTAS: [keyof Quotas, string][] = [
  ['max_wells', 'Wells'],
  ['max_gateways', 'Gateways'],
  ['max_samples_per_day', 'Samples per day'],
  ['api_requests_per_minute', 'API requests per minute'],
  ['retention_days', 'Retention (days)'],
];

const day = (d: Date) => d.toISOString().slice(0, 10);

/** `refresh`: a number to change when the usage may have changed (after a plan change). */
export function UsageView({ path, refresh = 0 }: { path: string; refresh?: number }) {
  const [from, setFrom] = useState(() => day(new Date(Date.now() - 30 * 86_400_000)));
  const [to, setTo] = useState(() => day(new Date()));
  const usage = useLoad(
    (signal) => get<Usage>(`${path}?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, signal),
    [path, refresh, from, to],
  );
  const columns = useMemo<ColumnDef<UsageDay, any>[]>(
    () => [
      { id: 'day', header: 'Day', accessorFn: (d) => d.day },
      { id: 'samples', header: 'Samples', accessorFn: (d) => d.samples_ingested, cell: ({ getValue }) => getValue().toLocaleString() },
      { id: 'wells', header: 'Active wells', accessorFn: (d) => d.active_wells },
      { id: 'gateways', header: 'Gateways online', accessorFn: (d) => d.gateways_online },
      { id: 'api', header: 'API calls', accessorFn: (d) => d.api_calls },
      { id: 'storage', header: 'Storage (MB)', accessorFn: (d) => d.storage_bytes, cell: ({ getValue }) => (getValue() / 1e6).toFixed(1) },
    ],
    [],
  );
  const u = usage.data;
  return (
    <>
      <ErrorBox error={usage.error} what="read the usage" />
      {u ? (
        <>
          <dl class="facts" aria-label="Plan and quotas">
            <dt>Plan</dt>
            <dd data-testid="plan">{u.plan}</dd>
            {QUOTAS.map(([k, label]) => (
              <>
                <dt key={`${k}-t`}>{label}</dt>
                <dd key={`${k}-d`}>{u.quotas[k] === null ? 'unlimited' : u.quotas[k]!.toLocaleString()}</dd>
              </>
            ))}
          </dl>
          <h2>Daily usage</h2>
          <div class="inline">
            <label>
              From
              <input type="date" required value={from} onChange={(e) => setFrom(value(e))} />
            </label>
            <label>
              To
              <input type="date" required value={to} onChange={(e) => setTo(value(e))} />
            </label>
          </div>
          <DataTable label="daily usage" data={u.days} columns={columns} rowKey={(d) => d.day} empty="No usage recorded yet." initialSort={[{ id: 'day', desc: true }]} />
        </>
      ) : null}
    </>
  );
}

export function UsagePage() {
  const { tenant } = useTenant();
  return (
    <>
      <h1>Plan and usage</h1>
      <UsageView path={tenantPath(tenant, '/usage')} />
    </>
  );
}
