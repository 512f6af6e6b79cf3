import { useEffect, useMemo, useState } from 'preact/hooks';
import { get, signOut } from './api/client';
import { AlertFeed } from './api/feed';
import { onChange, session } from './api/session';
import type { Me, Page } from './api/types';
import { ErrorBox } from './components/ErrorBox';
import { Link } from './components/Link';
import { AcceptInvitation, ResetPassword } from './pages/Account';
import { Admin } from './pages/admin/Admin';
import { Fleet } from './pages/Fleet';
import { Inbox } from './pages/Inbox';
import { Platform } from './pages/Platform';
import { Reports } from './pages/Reports';
import { Insights } from './pages/Insights';
import { SignIn } from './pages/SignIn';
import { WellPage } from './pages/Well';
import { can, roleIn } from './roles';
import { adminPath, alertsPath, fleetPath, insightsPath, navigate, parse, platformTenantsPath, reportsPath, useLocation } from './router';
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

  // The links of emails work signed out (and signed in as someone else).
  if (route.page === 'accept-invitation') return <AcceptInvitation />;
  if (route.page === 'reset-password') return <ResetPassword />;
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
    case 'platform-tenants':
      return <Frame me={me}><Platform me={me} slug={route.slug} /></Frame>;
    default:
      return <TenantShell me={me} tenant={route.tenant} route={route} />;
  }
}

function Frame({ children, me }: { children: preact.ComponentChildren; me?: Me }) {
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">WellPulse</span>
        {me?.platform_admin ? (
          <nav aria-label="Main">
            <Link href="/">Start</Link>
            <Link href={platformTenantsPath()}>Tenants</Link>
          </nav>
        ) : null}
        <span class="who"><SignOut /></span>
      </header>
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
    <Frame me={me}>
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
          <p><Link href={platformTenantsPath()}>Manage tenants: create, suspend, plans and usage</Link></p>
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
  if (role === null) {
    // Not one of the caller's tenants (or none at all): the same answer either way.
    return (
      <Frame me={me}>
        <h1>Not found</h1>
        <p role="alert" class="error">Tenant {tenant} not found: there is no such tenant, or you have no role in it.</p>
        <Link href="/">Go to the start page</Link>
      </Frame>
    );
  }
  const admin = can(me, tenant, 'tenant_admin');
  return (
    <Tenant.Provider value={{ tenant, me, feed }}>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">WellPulse</span>
        <nav aria-label="Main">
          <Link href={fleetPath(tenant)} class={route.page === 'fleet' || route.page === 'well' ? 'active' : undefined}>Fleet</Link>
          <Link href={alertsPath(tenant)} class={route.page === 'alerts' ? 'active' : undefined}>
            Alerts <span class="badge">{state.alerts.length}<span class="visually-hidden"> open</span></span>
          </Link>
          <Link href={insightsPath(tenant)} class={route.page === 'insights' ? 'active' : undefined}>Insights</Link>
          <Link href={reportsPath(tenant)} class={route.page === 'reports' ? 'active' : undefined}>Reports</Link>
          {admin ? <Link href={adminPath(tenant)} class={route.page === 'admin' ? 'active' : undefined}>Admin</Link> : null}
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
        {route.page === 'insights' ? <Insights /> : null}
        {route.page === 'reports' ? <Reports /> : null}
        {route.page === 'admin' ? <Admin section={route.section} item={route.item} /> : null}
      </main>
    </Tenant.Provider>
  );
}
