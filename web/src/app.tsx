import { useEffect, useMemo, useState } from 'preact/hooks';
import { get, signOut } from './api/client';
import { AlertFeed } from './api/feed';
import { onChange, session } from './api/session';
import type { Me, Page } from './api/types';
import { ErrorBox } from './components/ErrorBox';
import { Link } from './components/Link';
import { Fleet } from './pages/Fleet';
import { Inbox } from './pages/Inbox';
import { SignIn } from './pages/SignIn';
import { WellPage } from './pages/Well';
import { roleIn } from './roles';
import { alertsPath, fleetPath, navigate, parse, useLocation } from './router';
import { Tenant, useFeed } from './tenant';

export function App() {
  const path = useLocation();
  const route = parse(path);
  const [signedIn, setSignedIn] = useState(session() !== null);
  const [me, setMe] = useState<Me | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => onChange(() => setSignedIn(session() !== null)), []);
  useEffect(() => {
    if (!signedIn) {
      setMe(null);
      return;
    }
    setError(null);
    get<Me>('/api/v1/auth/me').then(setMe, setError);
  }, [signedIn]);

  if (!signedIn) {
    return <SignIn onSignedIn={() => (route.page === 'sign-in' ? navigate('/', true) : undefined)} />;
  }
  if (error) return <Frame><ErrorBox error={error} what="read your account" /></Frame>;
  if (!me) return <Frame><p aria-busy="true">Loading your account…</p></Frame>;

  switch (route.page) {
    case 'sign-in':
    case 'home':
      return <Home me={me} />;
    case 'not-found':
      return <Frame><h1>Not found</h1><p>There is no page at {path}.</p><Link href="/">Go to the start page</Link></Frame>;
    default:
      return <TenantShell me={me} tenant={route.tenant} route={route} />;
  }
}

function Frame({ children }: { children: preact.ComponentChildren }) {
  return (
    <>
      <header class="top"><span class="brand">WellPulse</span><SignOut /></header>
      <main id="main">{children}</main>
    </>
  );
}

function SignOut() {
  return (
    <button type="button" class="link" onClick={() => void signOut().finally(() => navigate('/', true))}>
      Sign out
    </button>
  );
}

function Home({ me }: { me: Me }) {
  const [slug, setSlug] = useState('');
  const [all, setAll] = useState<{ slug: string; name: string; status: string }[]>([]);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (me.tenants.length === 1 && !me.platform_admin) navigate(fleetPath(me.tenants[0].tenant), true);
    if (me.platform_admin) {
      get<Page<{ slug: string; name: string; status: string }>>('/api/v1/admin/tenants?limit=1000').then((p) => setAll(p.items), setError);
    }
  }, [me]);
  return (
    <Frame>
      <h1>Tenants</h1>
      {me.tenants.length === 0 && !me.platform_admin ? <p>You have no role in any tenant yet; ask a tenant administrator to invite you.</p> : null}
      <ul>
        {me.tenants.map((g) => (
          <li key={g.tenant}>
            <Link href={fleetPath(g.tenant)}>{g.tenant}</Link> <span class="muted">({g.role.replace('_', ' ')})</span>
          </li>
        ))}
      </ul>
      {me.platform_admin ? (
        <>
          <h2>Every tenant (platform administration)</h2>
          <ErrorBox error={error} what="list the tenants" />
          <ul>
            {all.map((t) => (
              <li key={t.slug}>
                <Link href={fleetPath(t.slug)}>{t.name || t.slug}</Link> <span class="muted">({t.slug}, {t.status})</span>
              </li>
            ))}
          </ul>
        </>
      ) : null}
      {me.platform_admin ? (
        <form class="inline" onSubmit={(e) => { e.preventDefault(); if (slug.trim()) navigate(fleetPath(slug.trim())); }}>
          <label>
            Open a tenant by its id
            <input value={slug} onInput={(e) => setSlug((e.target as HTMLInputElement).value)} pattern="[a-z0-9][a-z0-9_-]*" />
          </label>
          <button type="submit">Open</button>
        </form>
      ) : null}
    </Frame>
  );
}

type TenantRoute = Extract<ReturnType<typeof parse>, { tenant: string }>;

function TenantShell({ me, tenant, route }: { me: Me; tenant: string; route: TenantRoute }) {
  const feed = useMemo(() => new AlertFeed(tenant), [tenant]);
  useEffect(() => {
    feed.start();
    return () => feed.stop();
  }, [feed]);
  const state = useFeed(feed);
  const role = roleIn(me, tenant);
  return (
    <Tenant.Provider value={{ tenant, me, feed }}>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">WellPulse</span>
        <nav aria-label="Main">
          <Link href={fleetPath(tenant)} class={route.page === 'fleet' || route.page === 'well' ? 'active' : undefined}>Fleet</Link>
          <Link href={alertsPath(tenant)} class={route.page === 'alerts' ? 'active' : undefined}>
            Alerts <span class="badge" aria-label={`${state.alerts.length} open`}>{state.alerts.length}</span>
          </Link>
        </nav>
        <span class="who">
          <span class="tenant">{tenant}</span>
          <span class="muted">{role ? role.replace('_', ' ') : 'no role'}</span>
          <span class={`live ${state.status}`} title="Live updates from the server">{state.status === 'live' ? 'live' : state.status}</span>
          {me.tenants.length > 1 || me.platform_admin ? <Link href="/">Switch</Link> : null}
          <SignOut />
        </span>
      </header>
      <main id="main">
        <ErrorBox error={state.error} what="follow live alerts" />
        {route.page === 'fleet' ? <Fleet /> : null}
        {route.page === 'alerts' ? <Inbox selected={route.alert} /> : null}
        {route.page === 'well' ? <WellPage well={route.well} /> : null}
      </main>
    </Tenant.Provider>
  );
}
