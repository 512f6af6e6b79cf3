// API keys of the tenant: create (the key is shown once), revoke.
import type { ColumnDef } from '@tanstack/react-table';
import { useMemo, useState } from 'preact/hooks';
import { api, tenantPath } from '../../api/client';
import { all } from '../../api/lists';
import type { ApiKey, NewApiKey, Role } from '../../api/types';
import { ConfirmButton } from '../../components/ConfirmButton';
import { DataTable } from '../../components/DataTable';
import { ErrorBox } from '../../components/ErrorBox';
import { ago, when, who } from '../../components/format';
import { useAction, useLoad, value } from '../../components/hooks';
import { useTenant } from '../../tenant';
import { RoleSelect } from './People';

export function ApiKeys() {
  const { tenant } = useTenant();
  const keys = useLoad((signal) => all<ApiKey>(tenant, '/api-keys', signal), [tenant]);
  const action = useAction();
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [days, setDays] = useState('90');
  const [made, setMade] = useState<NewApiKey | null>(null);

  const create = async (e: Event) => {
    e.preventDefault();
    const key = await action.run(() =>
      api<NewApiKey>('POST', tenantPath(tenant, '/api-keys'), { name: name.trim(), role, ...(days ? { expires_in_days: Number(days) } : {}) }),
    );
    if (key) {
      setMade(key);
      setName('');
      keys.reload();
    }
  };
  const revoke = (k: ApiKey) =>
    void action.run(async () => {
      await api<void>('DELETE', tenantPath(tenant, `/api-keys/${k.id}`));
      keys.reload();
    });

  const columns = useMemo<ColumnDef<ApiKey, any>[]>(
    () => [
      { id: 'name', header: 'Name', accessorFn: (k) => k.name },
      { id: 'prefix', header: 'Starts with', accessorFn: (k) => k.prefix, cell: ({ getValue }) => <code>{getValue()}</code> },
      { id: 'role', header: 'Role', accessorFn: (k) => k.role.replace('_', ' ') },
      { id: 'by', header: 'Created by', accessorFn: (k) => who(k.created_by) },
      { id: 'expires', header: 'Expires', accessorFn: (k) => k.expires_at ?? '', cell: ({ row }) => (row.original.expires_at ? when(row.original.expires_at) : 'never') },
      { id: 'used', header: 'Last used', accessorFn: (k) => k.last_used_at ?? '', cell: ({ row }) => ago(row.original.last_used_at) },
      {
        id: 'state',
        header: 'State',
        accessorFn: (k) => (k.revoked_at ? 'revoked' : 'active'),
        cell: ({ row }) =>
          row.original.revoked_at ? (
            <span class="bad">revoked {ago(row.original.revoked_at)}</span>
          ) : (
            <ConfirmButton label="Revoke" confirm={`Revoke key ${row.original.name}?`} busy={action.busy} onConfirm={() => revoke(row.original)} />
          ),
      },
    ],
    [tenant, action.busy],
  );

  return (
    <>
      <h1>API keys</h1>
      <form class="inline panel" aria-label="New API key" onSubmit={(e) => void create(e)}>
        <label>
          Key name
          <input required value={name} onInput={(e) => setName(value(e))} />
        </label>
        <label>
          Role
          <RoleSelect label="Role of the key" role={role} onChange={setRole} />
        </label>
        <label>
          Expires in (days)
          <input type="number" min={1} max={3650} value={days} onInput={(e) => setDays(value(e))} />
        </label>
        <button type="submit" class="primary" disabled={action.busy}>Create key</button>
      </form>
      {made ? (
        <div class="panel issued" role="region" aria-label="New key">
          <p>
            The key <strong>{made.name}</strong>, shown this once: copy it now.
          </p>
          <p>
            <code class="secret" data-testid="new-key">{made.key}</code>
          </p>
          <button type="button" onClick={() => setMade(null)}>I copied it</button>
        </div>
      ) : null}
      <ErrorBox error={action.error} what="change the API keys" />
      <ErrorBox error={keys.error} what="list the API keys" />
      <DataTable label="API keys" data={keys.data ?? []} columns={columns} rowKey={(k) => String(k.id)} empty={keys.data ? 'No API keys yet.' : 'Loading…'} />
    </>
  );
}
