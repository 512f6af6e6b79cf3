// Platform administration (/admin/tenants): every tenant; create one (its first
// administrator is invited by email), suspend, reactivate, change its plan; its quotas and
// usage; the platform's audit log. Platform administrators only.
import type { ColumnDef } from '@tanstack/react-table';
import { useState } from 'preact/hooks';
import { api, get } from '../api/client';
import type { Me, Page, TenantInfo } from '../api/types';
import { ConfirmButton } from '../components/ConfirmButton';
import { DataTable } from '../components/DataTable';
import { ErrorBox } from '../components/ErrorBox';
import { Link } from '../components/Link';
import { when } from '../components/format';
import { useAction, useLoad, value } from '../components/hooks';
import { fleetPath, platformTenantsPath } from '../router';
import { AuditLog } from './admin/Audit';
import { UsageView } from './admin/Usage';

const admin = (slug: string, rest = '') => `/api/v1/admin/tenants/${encodeURIComponent(slug)}${rest}`;

async function allTenants(signal: AbortSignal): Promise<TenantInfo[]> {
  const items: TenantInfo[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<TenantInfo> = await get<Page<TenantInfo>>(`/api/v1/admin/tenants?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, signal);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

export function Platform({ me, slug }: { me: Me; slug?: string }) {
  const tenants = useLoad(allTenants, []);
  const action = useAction();
  const [form, setForm] = useState({ slug: '', name: '', admin_email: '', plan: '' });
  const [created, setCreated] = useState<string | null>(null);

  if (!me.platform_admin) {
    return (
      <section>
        <h1>Not allowed</h1>
        <p role="alert" class="error">Only platform administrators manage tenants.</p>
        <Link href="/">Back to the start page</Link>
      </section>
    );
  }
  const create = async (e: Event) => {
    e.preventDefault();
    const body = { slug: form.slug.trim(), name: form.name.trim(), admin_email: form.admin_email.trim(), ...(form.plan.trim() ? { plan: form.plan.trim() } : {}) };
    const made = await action.run(() => api<{ tenant: TenantInfo }>('POST', '/api/v1/admin/tenants', body));
    if (made) {
      setCreated(`${made.tenant.slug} created; its administrator ${body.admin_email} is invited by email.`);
      setForm({ slug: '', name: '', admin_email: '', plan: '' });
      tenants.reload();
    }
  };
  const columns: ColumnDef<TenantInfo, any>[] = [
    { id: 'slug', header: 'Tenant', accessorFn: (t) => t.slug, cell: ({ row }) => <Link href={platformTenantsPath(row.original.slug)}>{row.original.slug}</Link> },
    { id: 'name', header: 'Name', accessorFn: (t) => t.name },
    { id: 'status', header: 'Status', accessorFn: (t) => t.status, cell: ({ getValue }) => <span class={getValue() === 'active' ? 'good' : 'bad'}>{getValue()}</span> },
    { id: 'plan', header: 'Plan', accessorFn: (t) => t.plan },
    { id: 'created', header: 'Created', accessorFn: (t) => t.created_at, cell: ({ row }) => when(row.original.created_at) },
  ];
  const chosen = slug ? tenants.data?.find((t) => t.slug === slug) : undefined;
  return (
    <>
      <h1>Tenants</h1>
      {slug ? (
        tenants.data && !chosen ? (
          <p role="alert" class="error">Tenant {slug} not found.</p>
        ) : chosen ? (
          <TenantPanel tenant={chosen} onChanged={tenants.reload} />
        ) : null
      ) : (
        <form class="inline panel" aria-label="New tenant" onSubmit={(e) => void create(e)}>
          <label>
            Tenant id
            <input required value={form.slug} pattern="[a-z0-9][a-z0-9_\-]*" onInput={(e) => setForm({ ...form, slug: value(e) })} />
          </label>
          <label>
            Company name
            <input required value={form.name} onInput={(e) => setForm({ ...form, name: value(e) })} />
          </label>
          <label>
            Administrator's email
            <input type="email" required value={form.admin_email} onInput={(e) => setForm({ ...form, admin_email: value(e) })} />
          </label>
          <label>
            Plan (empty: the default)
            <input value={form.plan} onInput={(e) => setForm({ ...form, plan: value(e) })} />
          </label>
          <button type="submit" class="primary" disabled={action.busy}>Create tenant</button>
        </form>
      )}
      {created ? <p role="status" class="notice">{created}</p> : null}
      <ErrorBox error={action.error} what="create the tenant" />
      <ErrorBox error={tenants.error} what="list the tenants" />
      <DataTable label="tenants" data={tenants.data ?? []} columns={columns} rowKey={(t) => t.slug} empty={tenants.data ? 'No tenants yet.' : 'Loading…'} />
      <h2>Platform audit log</h2>
      <AuditLog base="/api/v1/admin/audit" />
    </>
  );
}

function TenantPanel({ tenant, onChanged }: { tenant: TenantInfo; onChanged: () => void }) {
  const action = useAction();
  const [plan, setPlan] = useState(tenant.plan);
  const [round, setRound] = useState(0);
  const act = (what: () => Promise<unknown>) =>
    void action.run(async () => {
      await what();
      onChanged();
      setRound((r) => r + 1);
    });
  return (
    <div class="panel" role="region" aria-label={`Tenant ${tenant.slug}`}>
      <h2>
        {tenant.name} <span class="muted">({tenant.slug})</span>
      </h2>
      <p>
        <Link href={platformTenantsPath()}>All tenants</Link> · <Link href={fleetPath(tenant.slug)}>Open its fleet</Link>
      </p>
      <dl class="facts">
        <dt>Status</dt>
        <dd data-testid="tenant-status">{tenant.status}</dd>
        <dt>Since</dt>
        <dd>{when(tenant.status_changed_at)}</dd>
        {tenant.deletion_due_at ? (
          <>
            <dt>Deletion due</dt>
            <dd>{when(tenant.deletion_due_at)}</dd>
          </>
        ) : null}
      </dl>
      <div class="actions">
        {tenant.status === 'active' ? (
          <ConfirmButton label="Suspend" confirm={`Suspend ${tenant.slug}? Its people and gateways are refused at once.`} busy={action.busy} onConfirm={() => act(() => api('POST', admin(tenant.slug, '/suspend')))} />
        ) : tenant.status === 'suspended' ? (
          <button type="button" disabled={action.busy} onClick={() => act(() => api('POST', admin(tenant.slug, '/reactivate')))}>
            Reactivate
          </button>
        ) : null}
        <form class="inline" aria-label="Change the plan" onSubmit={(e) => { e.preventDefault(); act(() => api('PUT', admin(tenant.slug, '/plan'), { plan: plan.trim() })); }}>
          <label>
            Plan
            <input required value={plan} onInput={(e) => setPlan(value(e))} />
          </label>
          <button type="submit" disabled={action.busy}>Change plan</button>
        </form>
      </div>
      <ErrorBox error={action.error} what={`change ${tenant.slug}`} />
      <h3>Quotas and usage</h3>
      <UsageView path={admin(tenant.slug, '/usage')} refresh={round} />
    </div>
  );
}
