// One alert: evidence, history, comments, and the actions the caller's role allows
// (operators and above; a viewer sees none of the buttons).
import { useEffect, useState } from 'preact/hooks';
import { api, get, tenantPath } from '../api/client';
import type { Alert, AlertDetail, Member, Page } from '../api/types';
import { ErrorBox } from '../components/ErrorBox';
import { Link } from '../components/Link';
import { when, who } from '../components/format';
import { can } from '../roles';
import { alertsPath, wellPath } from '../router';
import { useTenant } from '../tenant';

export function AlertPanel({ id, live }: { id: number; live?: Alert }) {
  const { tenant, me, feed } = useTenant();
  const [detail, setDetail] = useState<AlertDetail | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [comment, setComment] = useState('');
  const [silenceFor, setSilenceFor] = useState('2h');
  const [members, setMembers] = useState<Member[] | null>(null);
  const operator = can(me, tenant, 'operator');
  const admin = can(me, tenant, 'tenant_admin');
  const myId = /^user:(\d+) /.exec(me.actor)?.[1];

  const reload = (signal?: AbortSignal) =>
    get<AlertDetail>(tenantPath(tenant, `/alerts/${id}`), signal).then(
      (d) => {
        setDetail(d);
        setError(null);
      },
      (e) => (e as Error).name === 'AbortError' || setError(e),
    );
  // Read again whenever the stream says this alert changed.
  const version = live ? `${live.state}|${live.last_fired_at}|${live.assignee_user_id}|${live.silence_id}` : '';
  useEffect(() => {
    const abort = new AbortController();
    void reload(abort.signal);
    return () => abort.abort();
  }, [tenant, id, version]);
  useEffect(() => {
    if (!admin) return;
    get<Page<Member>>(tenantPath(tenant, '/members?limit=1000')).then((p) => setMembers(p.items), () => setMembers(null));
  }, [tenant, admin]);

  const act = async (what: string, method: string, path: string, body?: unknown) => {
    setBusy(true);
    setActionError(null);
    try {
      const answer = await api<Alert | unknown>(method, tenantPath(tenant, path), body);
      if (answer && typeof answer === 'object' && 'fingerprint' in answer) feed.apply(answer as unknown as Alert);
      await reload();
      return true;
    } catch (e) {
      setActionError(Object.assign(e as Error, { what }));
      return false;
    } finally {
      setBusy(false);
    }
  };

  if (error) return <aside class="detail"><ErrorBox error={error} what={`load alert ${id}`} /><Link href={alertsPath(tenant)}>Back to the inbox</Link></aside>;
  if (!detail) return <aside class="detail" aria-busy="true">Loading alert {id}…</aside>;
  const a = detail;
  const open = a.state !== 'resolved';
  return (
    <aside class="detail" aria-labelledby="alert-h">
      <h2 id="alert-h">
        <span class={`sev ${a.severity}`}>{a.severity}</span> {a.summary || a.kind}
      </h2>
      <dl class="facts">
        <dt>State</dt>
        <dd data-testid="alert-state">{a.state}{a.flapping ? ' (flapping)' : ''}{a.silence_id ? ' (silenced)' : ''}</dd>
        <dt>Kind</dt>
        <dd>{a.kind}{a.subject ? ` · ${a.subject}` : ''}</dd>
        <dt>Well</dt>
        <dd>{a.well_id ? <Link href={wellPath(tenant, a.well_id)}>{a.well}</Link> : '—'}</dd>
        <dt>Device</dt>
        <dd>{a.device ?? '—'}{a.gateway ? ` on ${a.gateway}` : ''}</dd>
        <dt>Started</dt>
        <dd>{when(a.started_at)}</dd>
        <dt>Acknowledged</dt>
        <dd>{a.acknowledged_at ? `${when(a.acknowledged_at)} by ${who(a.acknowledged_by)}` : '—'}</dd>
        <dt>Assignee</dt>
        <dd>{a.assignee ?? '—'}</dd>
      </dl>

      {operator && open ? (
        <div class="actions" role="group" aria-label="Alert actions">
          {a.state === 'firing' ? (
            <button type="button" class="primary" disabled={busy} onClick={() => void act('acknowledge', 'POST', `/alerts/${id}/acknowledge`)}>
              Acknowledge
            </button>
          ) : null}
          <button type="button" disabled={busy} onClick={() => void act('resolve', 'POST', `/alerts/${id}/resolve`)}>
            Resolve
          </button>
          {myId && String(a.assignee_user_id) !== myId ? (
            <button type="button" disabled={busy} onClick={() => void act('assign', 'PUT', `/alerts/${id}/assignee`, { user_id: Number(myId) })}>
              Assign to me
            </button>
          ) : null}
          {a.assignee_user_id !== null ? (
            <button type="button" disabled={busy} onClick={() => void act('unassign', 'PUT', `/alerts/${id}/assignee`, { user_id: null })}>
              Unassign
            </button>
          ) : null}
          {members ? (
            <label>
              Assign to
              <select
                disabled={busy}
                value={a.assignee_user_id ?? ''}
                onChange={(e) => {
                  const v = (e.target as HTMLSelectElement).value;
                  void act('assign', 'PUT', `/alerts/${id}/assignee`, { user_id: v ? Number(v) : null });
                }}
              >
                <option value="">nobody</option>
                {members.map((m) => (
                  <option key={m.user_id} value={m.user_id}>{m.display_name || m.email}</option>
                ))}
              </select>
            </label>
          ) : null}
          <form
            class="inline"
            onSubmit={(e) => {
              e.preventDefault();
              void act('silence', 'POST', '/silences', {
                kind: a.kind,
                well_id: a.well_id ?? undefined,
                device_id: a.well_id ? undefined : a.device_id ?? undefined,
                duration: silenceFor,
                comment: `from alert ${a.id}`,
              });
            }}
          >
            <label>
              Silence this kind here for
              <select value={silenceFor} onChange={(e) => setSilenceFor((e.target as HTMLSelectElement).value)}>
                {['30m', '2h', '8h', '1d', '7d'].map((d) => <option key={d} value={d}>{d}</option>)}
              </select>
            </label>
            <button type="submit" disabled={busy}>Silence</button>
          </form>
        </div>
      ) : null}
      <ErrorBox error={actionError} what={(actionError as { what?: string } | null)?.what} />

      <h3>Evidence</h3>
      <Evidence evidence={a.evidence} />

      <h3>History</h3>
      <ol class="history">
        {a.events.map((e, i) => (
          <li key={i}>
            <time dateTime={e.at}>{when(e.at)}</time> {e.event.replace(/_/g, ' ')}{e.actor ? ` by ${who(e.actor)}` : ''}
          </li>
        ))}
      </ol>

      <h3>Comments</h3>
      {a.comments.length === 0 ? <p class="muted">No comments.</p> : null}
      <ul class="comments">
        {a.comments.map((c) => (
          <li key={c.id}>
            <p>{c.body}</p>
            <span class="muted">{who(c.author)}, {when(c.created_at)}</span>
          </li>
        ))}
      </ul>
      {operator ? (
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            if (await act('comment', 'POST', `/alerts/${id}/comments`, { body: comment })) setComment('');
          }}
        >
          <label>
            Add a comment
            <textarea rows={3} maxLength={4000} required value={comment} onInput={(e) => setComment((e.target as HTMLTextAreaElement).value)} />
          </label>
          <button type="submit" disabled={busy || !comment.trim()}>Comment</button>
        </form>
      ) : null}
    </aside>
  );
}

function Evidence({ evidence }: { evidence: Record<string, unknown> }) {
  const entries = Object.entries(evidence ?? {});
  if (entries.length === 0) return <p class="muted">No evidence recorded.</p>;
  return (
    <dl class="facts">
      {entries.map(([k, v]) => (
        <>
          <dt key={`${k}-k`}>{k.replace(/_/g, ' ')}</dt>
          <dd key={`${k}-v`}>{typeof v === 'object' ? <code>{JSON.stringify(v)}</code> : String(v)}</dd>
        </>
      ))}
    </dl>
  );
}
