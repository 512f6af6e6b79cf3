// The audit log, newest first: the tenant's (`/tenants/{t}/audit`) or, for a platform
// administrator on the platform page, every tenant's (`/admin/audit`).
import type { ColumnDef } from '@tanstack/react-table';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { get, tenantPath } from '../../api/client';
import type { AuditEntry, Page } from '../../api/types';
import { DataTable } from '../../components/DataTable';
import { ErrorBox } from '../../components/ErrorBox';
import { when, who } from '../../components/format';
import { useTenant } from '../../tenant';

const brief = (v: unknown) => (v === null || v === undefined ? '' : JSON.stringify(v));

export function AuditLog({ base }: { base: string }) {
  const [items, setItems] = useState<AuditEntry[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const load = (after: string | null, signal?: AbortSignal) =>
    get<Page<AuditEntry>>(`${base}?limit=100${after ? `&cursor=${encodeURIComponent(after)}` : ''}`, signal).then(
      (page) => {
        setItems((old) => (after ? [...old, ...page.items] : page.items));
        setCursor(page.next_cursor);
        setLoaded(true);
      },
      (e) => (e as Error).name === 'AbortError' || setError(e),
    );
  useEffect(() => {
    const abort = new AbortController();
    setError(null);
    void load(null, abort.signal);
    return () => abort.abort();
  }, [base]);
  const columns = useMemo<ColumnDef<AuditEntry, any>[]>(
    () => [
      { id: 'at', header: 'When', accessorFn: (a) => a.at, cell: ({ row }) => when(row.original.at) },
      { id: 'actor', header: 'Who', accessorFn: (a) => who(a.actor) },
      { id: 'action', header: 'Action', accessorFn: (a) => a.action },
      { id: 'target', header: 'Target', accessorFn: (a) => a.target },
      { id: 'change', header: 'Change', enableSorting: false, accessorFn: (a) => `${brief(a.before)} ${brief(a.after)}`, cell: ({ row }) => <Change entry={row.original} /> },
      { id: 'from', header: 'From', accessorFn: (a) => a.client_addr ?? '' },
    ],
    [],
  );
  return (
    <>
      <ErrorBox error={error} what="read the audit log" />
      <DataTable label="audit log" data={items} columns={columns} rowKey={(a) => String(a.id)} empty={loaded ? 'Nothing audited yet.' : 'Loading…'} initialSort={[{ id: 'at', desc: true }]} />
      {cursor ? (
        <button type="button" onClick={() => void load(cursor)}>
          Load older entries
        </button>
      ) : null}
    </>
  );
}

function Change({ entry }: { entry: AuditEntry }) {
  const after = brief(entry.after);
  const before = brief(entry.before);
  if (!after && !before) return <span class="muted">—</span>;
  return (
    <details>
      <summary>{entry.before ? 'before / after' : 'details'}</summary>
      {before ? <pre>{before}</pre> : null}
      {after ? <pre>{after}</pre> : null}
    </details>
  );
}

export function Audit() {
  const { tenant } = useTenant();
  return (
    <>
      <h1>Audit log</h1>
      <p class="muted">Every change made in {tenant}, by whom and from where.</p>
      <AuditLog base={tenantPath(tenant, '/audit')} />
    </>
  );
}
