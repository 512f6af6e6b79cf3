import type { ColumnDef } from '@tanstack/react-table';
import { useMemo, useState } from 'preact/hooks';
import { api, tenantPath } from '../../api/client';
import { all } from '../../api/lists';
import type { Site } from '../../api/types';
import { ConfirmButton } from '../../components/ConfirmButton';
import { DataTable } from '../../components/DataTable';
import { ErrorBox } from '../../components/ErrorBox';
import { useAction, useLoad, value } from '../../components/hooks';
import { useTenant } from '../../tenant';

export function Sites() {
  const { tenant } = useTenant();
  const sites = useLoad((signal) => all<Site>(tenant, '/sites', signal), [tenant]);
  const action = useAction();
  const [name, setName] = useState('');
  const [state, setState] = useState('');
  const [operator, setOperator] = useState('');

  const create = async (e: Event) => {
    e.preventDefault();
    const made = await action.run(() =>
      api<Site>('POST', tenantPath(tenant, '/sites'), { name: name.trim(), state: state.trim(), operator_number: operator.trim() }),
    );
    if (made) {
      setName('');
      sites.reload();
    }
  };
  const remove = (site: Site) =>
    void action.run(async () => {
      await api<void>('DELETE', tenantPath(tenant, `/sites/${site.id}`));
      sites.reload();
    });

  const columns = useMemo<ColumnDef<Site, any>[]>(
    () => [
      { id: 'name', header: 'Site', accessorFn: (s) => s.name },
      { id: 'state', header: 'State', accessorFn: (s) => s.state },
      { id: 'operator', header: 'Operator number', accessorFn: (s) => s.operator_number },
      { id: 'wells', header: 'Wells', accessorFn: (s) => s.well_count },
      { id: 'gateways', header: 'Gateways', accessorFn: (s) => s.gateway_count },
      {
        id: 'actions',
        header: 'Actions',
        enableSorting: false,
        cell: ({ row }) => <ConfirmButton label="Delete" confirm={`Delete site ${row.original.name}?`} busy={action.busy} onConfirm={() => remove(row.original)} />,
      },
    ],
    [tenant, action.busy],
  );

  return (
    <>
      <h1>Sites</h1>
      <form class="inline panel" aria-label="New site" onSubmit={(e) => void create(e)}>
        <label>
          Site name
          <input required value={name} onInput={(e) => setName(value(e))} />
        </label>
        <label>
          State
          <input value={state} maxLength={2} size={3} onInput={(e) => setState(value(e).toUpperCase())} placeholder="TX" />
        </label>
        <label>
          Operator number
          <input value={operator} inputMode="numeric" onInput={(e) => setOperator(value(e))} />
        </label>
        <button type="submit" class="primary" disabled={action.busy}>Create site</button>
      </form>
      <ErrorBox error={action.error} what="change the sites" />
      <ErrorBox error={sites.error} what="list the sites" />
      <DataTable label="sites" data={sites.data ?? []} columns={columns} rowKey={(s) => String(s.id)} empty={sites.data ? 'No sites yet.' : 'Loading…'} />
    </>
  );
}
