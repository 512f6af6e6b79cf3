import type { ColumnDef } from '@tanstack/react-table';
import { useMemo, useState } from 'preact/hooks';
import { api, tenantPath } from '../../api/client';
import { all } from '../../api/lists';
import type { Site, Well } from '../../api/types';
import { ConfirmButton } from '../../components/ConfirmButton';
import { DataTable } from '../../components/DataTable';
import { ErrorBox } from '../../components/ErrorBox';
import { Link } from '../../components/Link';
import { useAction, useLoad, value } from '../../components/hooks';
import { wellPath } from '../../router';
import { useTenant } from '../../tenant';

const FIELDS = [
  ['api_number', 'API number', true],
  ['name', 'Well name', true],
  ['lease', 'Lease', false],
  ['field', 'Field', false],
  ['county', 'County', false],
  ['state', 'State', false],
] as const;

type Form = Record<(typeof FIELDS)[number][0], string>;
const EMPTY: Form = { api_number: '', name: '', lease: '', field: '', county: '', state: '' };

export function Wells() {
  const { tenant } = useTenant();
  const wells = useLoad((signal) => all<Well>(tenant, '/wells', signal), [tenant]);
  const sites = useLoad((signal) => all<Site>(tenant, '/sites', signal), [tenant]);
  const action = useAction();
  const [form, setForm] = useState<Form>(EMPTY);
  const [site, setSite] = useState('');

  const create = async (e: Event) => {
    e.preventDefault();
    const siteId = Number(site || sites.data?.[0]?.id);
    const body = Object.fromEntries(Object.entries(form).map(([k, v]) => [k, v.trim()]));
    const made = await action.run(() => api<Well>('POST', tenantPath(tenant, '/wells'), { site_id: siteId, ...body }));
    if (made) {
      setForm(EMPTY);
      wells.reload();
    }
  };
  const remove = (well: Well) =>
    void action.run(async () => {
      await api<void>('DELETE', tenantPath(tenant, `/wells/${well.id}`));
      wells.reload();
    });

  const columns = useMemo<ColumnDef<Well, any>[]>(
    () => [
      { id: 'name', header: 'Well', accessorFn: (w) => w.name, cell: ({ row }) => <Link href={wellPath(tenant, row.original.id)}>{row.original.name}</Link> },
      { id: 'api', header: 'API number', accessorFn: (w) => w.api_number },
      { id: 'site', header: 'Site', accessorFn: (w) => w.site.name },
      { id: 'lease', header: 'Lease', accessorFn: (w) => w.lease },
      { id: 'county', header: 'County', accessorFn: (w) => `${w.county}${w.state ? `, ${w.state}` : ''}` },
      { id: 'devices', header: 'Devices', accessorFn: (w) => w.device_count },
      { id: 'status', header: 'Status', accessorFn: (w) => w.status },
      {
        id: 'actions',
        header: 'Actions',
        enableSorting: false,
        cell: ({ row }) => <ConfirmButton label="Delete" confirm={`Delete well ${row.original.name}?`} busy={action.busy} onConfirm={() => remove(row.original)} />,
      },
    ],
    [tenant, action.busy],
  );

  return (
    <>
      <h1>Wells</h1>
      {sites.data && sites.data.length === 0 ? <p class="muted">Create a site first: every well is at a site.</p> : null}
      <form class="inline panel" aria-label="New well" onSubmit={(e) => void create(e)}>
        <label>
          Site
          <select required value={site} onChange={(e) => setSite(value(e))}>
            {(sites.data ?? []).map((s) => (
              <option key={s.id} value={String(s.id)}>{s.name}</option>
            ))}
          </select>
        </label>
        {FIELDS.map(([key, label, required]) => (
          <label key={key}>
            {label}
            <input required={required} value={form[key]} onInput={(e) => setForm({ ...form, [key]: value(e) })} />
          </label>
        ))}
        <button type="submit" class="primary" disabled={action.busy || !sites.data?.length}>Create well</button>
      </form>
      <ErrorBox error={action.error} what="change the wells" />
      <ErrorBox error={wells.error ?? sites.error} what="list the wells" />
      <DataTable label="wells" data={wells.data ?? []} columns={columns} rowKey={(w) => String(w.id)} empty={wells.data ? 'No wells yet.' : 'Loading…'} />
    </>
  );
}
