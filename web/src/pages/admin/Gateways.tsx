// Gateways: provision one (its secret and ready-to-run agent.toml are shown once, by the
// API's answer, and saved as a file from memory), see its status, last birth and devices,
// rotate and revoke its credentials.
import type { ColumnDef } from '@tanstack/react-table';
import { useMemo, useState } from 'preact/hooks';
import { api, get, tenantPath } from '../../api/client';
import { all } from '../../api/lists';
import type { Gateway, GatewayDetail, IssuedCredentials, NewDevice, Site, Well } from '../../api/types';
import { ConfirmButton } from '../../components/ConfirmButton';
import { DataTable } from '../../components/DataTable';
import { ErrorBox } from '../../components/ErrorBox';
import { Link } from '../../components/Link';
import { saveFile } from '../../components/download';
import { ago, when } from '../../components/format';
import { useAction, useLoad, value } from '../../components/hooks';
import { adminPath } from '../../router';
import { useTenant } from '../../tenant';

/** The built-in firmware profiles (firmware-profiles/profiles). */
const PROFILES = [
  'rod-pump-controller',
  'plunger-lift-controller',
  'esp-drive',
  'gas-flow-computer',
  'tank-gauge',
  'gas-detector',
  'generic-40-holding',
];

/** Credentials just issued: shown once, with the agent.toml to download. */
function Issued({ issued, onClose }: { issued: IssuedCredentials; onClose: () => void }) {
  return (
    <div class="panel issued" role="region" aria-label="Issued credentials">
      <h2>Credentials of {issued.gateway}</h2>
      <p>
        They are shown this once: download the agent configuration now and install it on the gateway
        (readable by the agent only, <code>chmod 600</code>).
      </p>
      <dl class="facts">
        <dt>MQTT user name</dt>
        <dd>{issued.username}</dd>
        <dt>Broker</dt>
        <dd>{issued.mqtt_url}</dd>
        {issued.previous_valid_until ? (
          <>
            <dt>Previous secret works until</dt>
            <dd>{when(issued.previous_valid_until)}</dd>
          </>
        ) : null}
      </dl>
      <div class="actions">
        <button type="button" class="primary" onClick={() => saveFile('agent.toml', issued.agent_toml, 'application/toml')}>
          Download agent.toml
        </button>
        <button type="button" onClick={onClose}>I saved it</button>
      </div>
    </div>
  );
}

export function Gateways({ selected }: { selected?: string }) {
  const { tenant } = useTenant();
  const gateways = useLoad((signal) => all<Gateway>(tenant, '/gateways', signal), [tenant]);
  const [issued, setIssued] = useState<IssuedCredentials | null>(null);
  const columns = useMemo<ColumnDef<Gateway, any>[]>(
    () => [
      { id: 'id', header: 'Gateway', accessorFn: (g) => g.id, cell: ({ row }) => <Link href={adminPath(tenant, 'gateways', row.original.id)}>{row.original.id}</Link> },
      { id: 'site', header: 'Site', accessorFn: (g) => g.site.name },
      { id: 'status', header: 'Status', accessorFn: (g) => g.status, cell: ({ getValue }) => <span class={`gw ${getValue()}`}>{getValue()}</span> },
      { id: 'seen', header: 'Last seen', accessorFn: (g) => g.last_seen ?? '', cell: ({ row }) => ago(row.original.last_seen) },
      { id: 'backlog', header: 'Backlog (batches)', accessorFn: (g) => g.buffer?.pending_batches ?? 0 },
      { id: 'devices', header: 'Devices', accessorFn: (g) => g.device_count },
    ],
    [tenant],
  );
  return (
    <>
      <h1>Gateways</h1>
      {issued ? <Issued issued={issued} onClose={() => setIssued(null)} /> : null}
      {selected ? (
        <GatewayPanel id={selected} onIssued={setIssued} onChanged={gateways.reload} />
      ) : (
        <Provision onIssued={(i) => { setIssued(i); gateways.reload(); }} />
      )}
      <ErrorBox error={gateways.error} what="list the gateways" />
      <DataTable label="gateways" data={gateways.data ?? []} columns={columns} rowKey={(g) => g.id} empty={gateways.data ? 'No gateways yet.' : 'Loading…'} />
    </>
  );
}

function Provision({ onIssued }: { onIssued: (i: IssuedCredentials) => void }) {
  const { tenant } = useTenant();
  const sites = useLoad((signal) => all<Site>(tenant, '/sites', signal), [tenant]);
  const wells = useLoad((signal) => all<Well>(tenant, '/wells', signal), [tenant]);
  const action = useAction();
  const [id, setId] = useState('');
  const [site, setSite] = useState('');
  const [device, setDevice] = useState<NewDevice>({ name: '', profile: PROFILES[0], tcp: '', well: '' });
  const [unit, setUnit] = useState('');

  const submit = async (e: Event) => {
    e.preventDefault();
    const devices = device.name.trim()
      ? [
          {
            name: device.name.trim(),
            profile: device.profile,
            tcp: device.tcp.trim(),
            ...(device.well ? { well: device.well } : {}),
            ...(unit.trim() ? { unit_id: Number(unit) } : {}),
          },
        ]
      : [];
    const made = await action.run(() =>
      api<IssuedCredentials>('POST', tenantPath(tenant, '/gateways'), { gateway: id.trim(), site_id: Number(site || sites.data?.[0]?.id), devices }),
    );
    if (made) {
      setId('');
      setDevice({ name: '', profile: PROFILES[0], tcp: '', well: '' });
      setUnit('');
      onIssued(made);
    }
  };
  return (
    <form class="panel" aria-label="Provision a gateway" onSubmit={(e) => void submit(e)}>
      <h2>Provision a gateway</h2>
      <div class="inline">
        <label>
          Gateway id
          <input required value={id} pattern="[a-z0-9][a-z0-9_\-]*" maxLength={63} onInput={(e) => setId(value(e))} />
        </label>
        <label>
          Site
          <select required value={site} onChange={(e) => setSite(value(e))}>
            {(sites.data ?? []).map((s) => (
              <option key={s.id} value={String(s.id)}>{s.name}</option>
            ))}
          </select>
        </label>
      </div>
      <fieldset>
        <legend>First device (optional; more can be added to agent.toml)</legend>
        <div class="inline">
          <label>
            Device name
            <input value={device.name} onInput={(e) => setDevice({ ...device, name: value(e) })} />
          </label>
          <label>
            Profile
            <select value={device.profile} onChange={(e) => setDevice({ ...device, profile: value(e) })}>
              {PROFILES.map((p) => <option key={p}>{p}</option>)}
            </select>
          </label>
          <label>
            Modbus TCP address
            <input value={device.tcp} placeholder="10.17.0.11:502" required={device.name.trim() !== ''} onInput={(e) => setDevice({ ...device, tcp: value(e) })} />
          </label>
          <label>
            Modbus unit id (optional)
            <input type="number" min={0} max={247} value={unit} onInput={(e) => setUnit(value(e))} />
          </label>
          <label>
            Well it measures
            <select value={device.well} onChange={(e) => setDevice({ ...device, well: value(e) })}>
              <option value="">none</option>
              {(wells.data ?? []).map((w) => (
                <option key={w.id} value={w.api_number}>{w.name} ({w.api_number})</option>
              ))}
            </select>
          </label>
        </div>
      </fieldset>
      <ErrorBox error={action.error ?? sites.error} what="provision the gateway" />
      <button type="submit" class="primary" disabled={action.busy || !sites.data?.length}>Provision</button>
    </form>
  );
}

function GatewayPanel({ id, onIssued, onChanged }: { id: string; onIssued: (i: IssuedCredentials) => void; onChanged: () => void }) {
  const { tenant } = useTenant();
  const detail = useLoad((signal) => get<GatewayDetail>(tenantPath(tenant, `/gateways/${encodeURIComponent(id)}`), signal), [tenant, id]);
  const action = useAction();
  const [overlap, setOverlap] = useState('60');
  const [revoked, setRevoked] = useState(false);
  const g = detail.data;
  const rotate = async (e: Event) => {
    e.preventDefault();
    const made = await action.run(() =>
      api<IssuedCredentials>('POST', tenantPath(tenant, `/gateways/${encodeURIComponent(id)}/credentials/rotate`), { overlap_minutes: Number(overlap) }),
    );
    if (made) onIssued(made);
  };
  const revoke = () =>
    void action.run(async () => {
      await api<void>('POST', tenantPath(tenant, `/gateways/${encodeURIComponent(id)}/credentials/revoke`));
      setRevoked(true);
      detail.reload();
      onChanged();
    });
  return (
    <div class="panel" role="region" aria-label={`Gateway ${id}`}>
      <h2>Gateway {id}</h2>
      <p><Link href={adminPath(tenant, 'gateways')}>Provision another gateway</Link></p>
      <ErrorBox error={detail.error} what={`read gateway ${id}`} />
      {g ? (
        <>
          <dl class="facts">
            <dt>Status</dt>
            <dd><span class={`gw ${g.status}`} data-testid="gateway-status">{g.status}</span></dd>
            <dt>Site</dt>
            <dd>{g.site.name}</dd>
            <dt>Last seen</dt>
            <dd>{ago(g.last_seen)}</dd>
            <dt>Data stored</dt>
            <dd>{ago(g.data_stored_at)}</dd>
            <dt>Backlog</dt>
            <dd>{g.buffer ? `${g.buffer.pending_batches} batches, ${g.buffer.pending_bytes} bytes; ${g.buffer.dropped_samples} samples dropped` : 'not reported'}</dd>
            <dt>Clock skew</dt>
            <dd>{g.clock_skew_ms === null ? '—' : `${g.clock_skew_ms} ms`}</dd>
            {g.refusal ? (
              <>
                <dt>Last refusal</dt>
                <dd>{g.refusal.reason} ({ago(g.refusal.at)})</dd>
              </>
            ) : null}
          </dl>
          <h3>Last birth</h3>
          {g.last_birth ? (
            <dl class="facts" data-testid="last-birth">
              <dt>Received</dt>
              <dd>{when(g.last_birth.received_at)}</dd>
              <dt>Agent version</dt>
              <dd>{g.last_birth.agent_version}</dd>
              <dt>Boot id</dt>
              <dd><code>{g.last_birth.boot_id}</code></dd>
              <dt>Configuration hash</dt>
              <dd><code>{g.last_birth.config_hash}</code></dd>
            </dl>
          ) : (
            <p class="muted" data-testid="last-birth">No birth received yet: the agent has not connected.</p>
          )}
          <h3>Devices</h3>
          {g.devices.length ? (
            <ul>
              {g.devices.map((d) => (
                <li key={d.id}>
                  {d.name} <span class="muted">({d.profile}, {d.series_count} series{d.current ? '' : ', not in the last birth'})</span>
                </li>
              ))}
            </ul>
          ) : (
            <p class="muted">No devices reported yet.</p>
          )}
          <h3>Credentials</h3>
          {revoked ? <p role="status">Revoked: the gateway is disconnected and its next login is refused. Rotate to issue new credentials.</p> : null}
          <div class="actions">
            <form class="inline" aria-label="Rotate the credentials" onSubmit={(e) => void rotate(e)}>
              <label>
                Old secret keeps working (minutes)
                <input type="number" min={0} max={10080} value={overlap} onInput={(e) => setOverlap(value(e))} />
              </label>
              <button type="submit" disabled={action.busy}>Rotate credentials</button>
            </form>
            <ConfirmButton label="Revoke credentials" confirm={`Disconnect ${id} and refuse its logins?`} busy={action.busy} onConfirm={revoke} />
          </div>
          <ErrorBox error={action.error} what="change the credentials" />
        </>
      ) : null}
    </div>
  );
}
