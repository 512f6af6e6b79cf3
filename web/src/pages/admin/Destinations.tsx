// Where alerts are delivered: webhooks (signed), Alertmanager, PagerDuty. Create (a webhook's
// signing secret is shown once), send a test alert and watch its delivery, enable/disable,
// delete.
import type { ColumnDef } from '@tanstack/react-table';
import { useMemo, useState } from 'preact/hooks';
import { api, get, tenantPath } from '../../api/client';
import type { CreatedDestination, Delivery, Destination, DestinationKind, Severity } from '../../api/types';
import { ConfirmButton } from '../../components/ConfirmButton';
import { DataTable } from '../../components/DataTable';
import { ErrorBox } from '../../components/ErrorBox';
import { ago, when } from '../../components/format';
import { useAction, useLoad, value } from '../../components/hooks';
import { useTenant } from '../../tenant';

const KINDS: DestinationKind[] = ['webhook', 'alertmanager', 'pagerduty'];
const SEVERITIES: Severity[] = ['info', 'warning', 'critical'];

export function Destinations() {
  const { tenant } = useTenant();
  const list = useLoad((signal) => get<Destination[]>(tenantPath(tenant, '/alert-destinations'), signal), [tenant]);
  const action = useAction();
  const [form, setForm] = useState({ name: '', kind: 'webhook' as DestinationKind, url: '', routing_key: '', min_severity: 'warning' as Severity });
  const [secret, setSecret] = useState<CreatedDestination | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  const [tested, setTested] = useState<Record<number, number>>({});

  const create = async (e: Event) => {
    e.preventDefault();
    const { routing_key, ...rest } = form;
    const made = await action.run(() =>
      api<CreatedDestination>('POST', tenantPath(tenant, '/alert-destinations'), {
        ...rest,
        name: rest.name.trim(),
        url: rest.url.trim(),
        ...(form.kind === 'pagerduty' ? { routing_key } : {}),
      }),
    );
    if (made) {
      setSecret(made.signing_secret ? made : null);
      setForm({ ...form, name: '', url: '', routing_key: '' });
      list.reload();
    }
  };
  const sendTest = (d: Destination) =>
    void action.run(async () => {
      const queued = await api<{ delivery_id: number }>('POST', tenantPath(tenant, `/alert-destinations/${d.id}/test`));
      setTested((t) => ({ ...t, [d.id]: queued.delivery_id }));
      setOpen(d.id);
    });
  const toggle = (d: Destination) =>
    void action.run(async () => {
      await api('PUT', tenantPath(tenant, `/alert-destinations/${d.id}`), {
        name: d.name,
        kind: d.kind,
        url: d.url,
        min_severity: d.min_severity,
        enabled: !d.enabled,
      });
      list.reload();
    });
  const remove = (d: Destination) =>
    void action.run(async () => {
      await api<void>('DELETE', tenantPath(tenant, `/alert-destinations/${d.id}`));
      if (open === d.id) setOpen(null);
      list.reload();
    });

  const columns = useMemo<ColumnDef<Destination, any>[]>(
    () => [
      { id: 'name', header: 'Destination', accessorFn: (d) => d.name },
      { id: 'kind', header: 'Kind', accessorFn: (d) => d.kind },
      { id: 'url', header: 'URL', accessorFn: (d) => d.url },
      { id: 'severity', header: 'From severity', accessorFn: (d) => d.min_severity },
      { id: 'enabled', header: 'Enabled', accessorFn: (d) => (d.enabled ? 'yes' : 'no') },
      { id: 'last', header: 'Last delivered', accessorFn: (d) => d.last_delivered_at ?? '', cell: ({ row }) => ago(row.original.last_delivered_at) },
      { id: 'queue', header: 'Pending / failed', accessorFn: (d) => d.pending + d.dead, cell: ({ row }) => `${row.original.pending} / ${row.original.dead}` },
      {
        id: 'actions',
        header: 'Actions',
        enableSorting: false,
        cell: ({ row }) => (
          <span class="row-actions">
            <button type="button" disabled={action.busy} onClick={() => sendTest(row.original)}>
              Send test alert<span class="visually-hidden"> to {row.original.name}</span>
            </button>
            <button type="button" onClick={() => setOpen(open === row.original.id ? null : row.original.id)} aria-expanded={open === row.original.id}>
              Deliveries<span class="visually-hidden"> of {row.original.name}</span>
            </button>
            <button type="button" disabled={action.busy} onClick={() => toggle(row.original)}>
              {row.original.enabled ? 'Disable' : 'Enable'}
            </button>
            <ConfirmButton label="Delete" confirm={`Delete ${row.original.name}?`} busy={action.busy} onConfirm={() => remove(row.original)} />
          </span>
        ),
      },
    ],
    [tenant, action.busy, open],
  );

  const chosen = list.data?.find((d) => d.id === open);
  return (
    <>
      <h1>Alert destinations</h1>
      <form class="inline panel" aria-label="New alert destination" onSubmit={(e) => void create(e)}>
        <label>
          Name
          <input required value={form.name} onInput={(e) => setForm({ ...form, name: value(e) })} />
        </label>
        <label>
          Kind
          <select value={form.kind} onChange={(e) => setForm({ ...form, kind: value(e) as DestinationKind })}>
            {KINDS.map((k) => <option key={k}>{k}</option>)}
          </select>
        </label>
        <label>
          URL
          <input type="url" required value={form.url} placeholder="https://hooks.example.com/wellpulse" onInput={(e) => setForm({ ...form, url: value(e) })} />
        </label>
        {form.kind === 'pagerduty' ? (
          <label>
            Routing key
            <input type="password" autoComplete="off" required value={form.routing_key} onInput={(e) => setForm({ ...form, routing_key: value(e) })} />
          </label>
        ) : null}
        <label>
          From severity
          <select value={form.min_severity} onChange={(e) => setForm({ ...form, min_severity: value(e) as Severity })}>
            {SEVERITIES.map((s) => <option key={s}>{s}</option>)}
          </select>
        </label>
        <button type="submit" class="primary" disabled={action.busy}>Add destination</button>
      </form>
      {secret ? (
        <div class="panel issued" role="region" aria-label="Signing secret">
          <p>
            The signing secret of <strong>{secret.name}</strong>, shown this once: the receiver verifies each webhook with it.
          </p>
          <p><code class="secret">{secret.signing_secret}</code></p>
          <button type="button" onClick={() => setSecret(null)}>I copied it</button>
        </div>
      ) : null}
      <ErrorBox error={action.error} what="change the destinations" />
      <ErrorBox error={list.error} what="list the destinations" />
      <DataTable label="alert destinations" data={list.data ?? []} columns={columns} rowKey={(d) => String(d.id)} empty={list.data ? 'No destinations: alerts are only shown in the inbox.' : 'Loading…'} />
      {chosen ? <Deliveries destination={chosen} highlight={tested[chosen.id]} /> : null}
    </>
  );
}

function Deliveries({ destination, highlight }: { destination: Destination; highlight?: number }) {
  const { tenant } = useTenant();
  const log = useLoad(
    (signal) => get<Delivery[]>(tenantPath(tenant, `/alert-destinations/${destination.id}/deliveries?limit=50`), signal),
    [tenant, destination.id, highlight],
  );
  const columns = useMemo<ColumnDef<Delivery, any>[]>(
    () => [
      { id: 'id', header: 'Delivery', accessorFn: (d) => d.id, cell: ({ row }) => (row.original.id === highlight ? <strong>{row.original.id} (test)</strong> : row.original.id) },
      { id: 'event', header: 'Event', accessorFn: (d) => d.event },
      { id: 'state', header: 'State', accessorFn: (d) => d.state },
      { id: 'attempts', header: 'Attempts', accessorFn: (d) => d.attempts },
      { id: 'status', header: 'Answer', accessorFn: (d) => d.last_status ?? '', cell: ({ row }) => row.original.last_status ?? row.original.last_error ?? '—' },
      { id: 'created', header: 'Queued', accessorFn: (d) => d.created_at, cell: ({ row }) => when(row.original.created_at) },
    ],
    [highlight],
  );
  return (
    <section aria-label={`Deliveries of ${destination.name}`}>
      <h2>Deliveries of {destination.name}</h2>
      {highlight ? <p role="status">Test alert queued (delivery {highlight}).</p> : null}
      <button type="button" onClick={log.reload}>Refresh</button>
      <ErrorBox error={log.error} what="read the deliveries" />
      <DataTable label="deliveries" data={log.data ?? []} columns={columns} rowKey={(d) => String(d.id)} empty={log.data ? 'Nothing delivered yet.' : 'Loading…'} initialSort={[{ id: 'id', desc: true }]} />
    </section>
  );
}
