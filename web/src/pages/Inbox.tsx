import type { ColumnDef } from '@tanstack/react-table';
import { useMemo } from 'preact/hooks';
import type { Alert } from '../api/types';
import { DataTable } from '../components/DataTable';
import { Link } from '../components/Link';
import { SEVERITY_RANK, ago } from '../components/format';
import { alertsPath, navigate, wellPath } from '../router';
import { useFeed, useTenant } from '../tenant';
import { AlertPanel } from './AlertPanel';

export function Inbox({ selected }: { selected?: number }) {
  const { tenant, feed } = useTenant();
  const { alerts, loaded } = useFeed(feed);
  const columns = useMemo<ColumnDef<Alert, any>[]>(
    () => [
      {
        id: 'severity',
        header: 'Severity',
        accessorFn: (a) => SEVERITY_RANK[a.severity],
        cell: (c) => <span class={`sev ${c.row.original.severity}`}>{c.row.original.severity}</span>,
      },
      {
        id: 'summary',
        header: 'Alert',
        accessorFn: (a) => `${a.summary} ${a.kind}`,
        cell: (c) => (
          <Link href={alertsPath(tenant, c.row.original.id)}>
            {c.row.original.summary || c.row.original.kind}
          </Link>
        ),
      },
      { id: 'kind', header: 'Kind', accessorFn: (a) => a.kind },
      {
        id: 'well',
        header: 'Well',
        accessorFn: (a) => a.well ?? '',
        cell: (c) => {
          const a = c.row.original;
          return a.well_id ? <Link href={wellPath(tenant, a.well_id)}>{a.well}</Link> : <span class="muted">{a.device ?? '—'}</span>;
        },
      },
      { id: 'state', header: 'State', accessorFn: (a) => a.state, cell: (c) => <span class={`state ${c.getValue()}`}>{c.getValue()}</span> },
      { id: 'assignee', header: 'Assignee', accessorFn: (a) => a.assignee ?? '' },
      { id: 'started', header: 'Started', accessorFn: (a) => a.started_at, cell: (c) => ago(c.row.original.started_at) },
    ],
    [tenant],
  );
  return (
    <div class={selected ? 'inbox with-detail' : 'inbox'}>
      <section aria-labelledby="inbox-h">
        <h1 id="inbox-h">Alert inbox</h1>
        {!loaded ? <p aria-busy="true">Loading open alerts…</p> : null}
        <DataTable
          label="open alerts"
          data={alerts}
          columns={columns}
          initialSort={[{ id: 'severity', desc: true }, { id: 'started', desc: true }]}
          empty="No open alerts."
          rowKey={(a) => String(a.id)}
          onOpen={(a) => navigate(alertsPath(tenant, a.id))}
        />
      </section>
      {selected ? <AlertPanel id={selected} live={alerts.find((a) => a.id === selected)} /> : null}
    </div>
  );
}
