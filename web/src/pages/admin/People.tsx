// Members of the tenant: invite (an email with a one-time link), change a role, remove.
import type { ColumnDef } from '@tanstack/react-table';
import { useMemo, useState } from 'preact/hooks';
import { api, tenantPath } from '../../api/client';
import { all } from '../../api/lists';
import type { Invitation, MemberRow, Role } from '../../api/types';
import { ConfirmButton } from '../../components/ConfirmButton';
import { DataTable } from '../../components/DataTable';
import { ErrorBox } from '../../components/ErrorBox';
import { when } from '../../components/format';
import { useAction, useLoad, value } from '../../components/hooks';
import { useTenant } from '../../tenant';

export const ROLES: { role: Role; label: string }[] = [
  { role: 'viewer', label: 'viewer' },
  { role: 'operator', label: 'operator' },
  { role: 'tenant_admin', label: 'tenant admin' },
];

export function RoleSelect({ label, role, onChange, disabled }: { label: string; role: Role; onChange: (r: Role) => void; disabled?: boolean }) {
  return (
    <select aria-label={label} value={role} disabled={disabled} onChange={(e) => onChange(value(e) as Role)}>
      {ROLES.map((r) => (
        <option key={r.role} value={r.role}>{r.label}</option>
      ))}
    </select>
  );
}

export function People() {
  const { tenant, me } = useTenant();
  const members = useLoad((signal) => all<MemberRow>(tenant, '/members', signal), [tenant]);
  const action = useAction();
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('operator');
  const [invited, setInvited] = useState<Invitation | null>(null);

  const invite = async (e: Event) => {
    e.preventDefault();
    const made = await action.run(() =>
      api<Invitation>('POST', tenantPath(tenant, '/invitations'), { email: email.trim(), role, ...(name.trim() ? { display_name: name.trim() } : {}) }),
    );
    if (made) {
      setInvited(made);
      setEmail('');
      setName('');
      members.reload();
    }
  };
  const setMemberRole = (m: MemberRow, r: Role) =>
    void action.run(async () => {
      await api('PUT', tenantPath(tenant, `/members/${m.user_id}`), { role: r });
      members.reload();
    });
  const remove = (m: MemberRow) =>
    void action.run(async () => {
      await api<void>('DELETE', tenantPath(tenant, `/members/${m.user_id}`));
      members.reload();
    });

  const columns = useMemo<ColumnDef<MemberRow, any>[]>(
    () => [
      { id: 'email', header: 'Email', accessorFn: (m) => m.email },
      { id: 'name', header: 'Name', accessorFn: (m) => m.display_name },
      {
        id: 'role',
        header: 'Role',
        accessorFn: (m) => m.role,
        cell: ({ row }) => (
          <RoleSelect label={`Role of ${row.original.email}`} role={row.original.role} disabled={action.busy} onChange={(r) => setMemberRole(row.original, r)} />
        ),
      },
      { id: 'since', header: 'Member since', accessorFn: (m) => m.since, cell: ({ row }) => when(row.original.since) },
      {
        id: 'actions',
        header: 'Actions',
        enableSorting: false,
        cell: ({ row }) =>
          me.actor.includes(row.original.email) ? (
            <span class="muted">you</span>
          ) : (
            <ConfirmButton label="Remove" confirm={`Remove ${row.original.email} from ${tenant}?`} busy={action.busy} onConfirm={() => remove(row.original)} />
          ),
      },
    ],
    [tenant, action.busy, me],
  );

  return (
    <>
      <h1>People</h1>
      <form class="inline panel" aria-label="Invite someone" onSubmit={(e) => void invite(e)}>
        <label>
          Email to invite
          <input type="email" required value={email} onInput={(e) => setEmail(value(e))} />
        </label>
        <label>
          Name (optional)
          <input value={name} onInput={(e) => setName(value(e))} />
        </label>
        <label>
          Role
          <RoleSelect label="Role of the invited person" role={role} onChange={setRole} />
        </label>
        <button type="submit" class="primary" disabled={action.busy}>Invite</button>
      </form>
      {invited ? (
        <p role="status" class="notice">
          Invitation sent to {invited.email} as {invited.role.replace('_', ' ')}; the link works until {when(invited.expires_at)}.
        </p>
      ) : null}
      <ErrorBox error={action.error} what="change the members" />
      <ErrorBox error={members.error} what="list the members" />
      <DataTable label="members" data={members.data ?? []} columns={columns} rowKey={(m) => String(m.user_id)} empty={members.data ? 'No members.' : 'Loading…'} />
    </>
  );
}
