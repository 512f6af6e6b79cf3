// The administration of a tenant: one page per area under /t/{tenant}/admin/{section}, for
// tenant administrators (and platform administrators). Anyone else is told "not allowed"
// here, before any request: the API would refuse them anyway.
import { Link } from '../../components/Link';
import { can } from '../../roles';
import { type AdminSection, adminPath, fleetPath } from '../../router';
import { useTenant } from '../../tenant';
import { ApiKeys } from './ApiKeys';
import { Billing } from './Billing';
import { Audit } from './Audit';
import { Destinations } from './Destinations';
import { Gateways } from './Gateways';
import { People } from './People';
import { Sites } from './Sites';
import { UsagePage } from './Usage';
import { Wells } from './Wells';

const TITLES: Record<AdminSection, string> = {
  sites: 'Sites',
  wells: 'Wells',
  gateways: 'Gateways',
  people: 'People',
  'api-keys': 'API keys',
  destinations: 'Alert destinations',
  audit: 'Audit log',
  usage: 'Plan and usage',
  billing: 'Billing',
};

export function NotAllowed({ what }: { what: string }) {
  const { tenant } = useTenant();
  return (
    <section>
      <h1>Not allowed</h1>
      <p role="alert" class="error">
        Your role in {tenant} does not allow {what}. Ask a tenant administrator if you need it.
      </p>
      <Link href={fleetPath(tenant)}>Back to the fleet</Link>
    </section>
  );
}

export function Admin({ section, item }: { section: AdminSection; item?: string }) {
  const { tenant, me } = useTenant();
  if (!can(me, tenant, 'tenant_admin')) return <NotAllowed what="administration" />;
  return (
    <div class="admin">
      <nav aria-label="Administration" class="subnav">
        {(Object.keys(TITLES) as AdminSection[]).map((s) => (
          <Link key={s} href={adminPath(tenant, s)} class={s === section ? 'active' : undefined} current={s === section}>
            {TITLES[s]}
          </Link>
        ))}
      </nav>
      <section class="admin-body">
        {section === 'sites' ? <Sites /> : null}
        {section === 'wells' ? <Wells /> : null}
        {section === 'gateways' ? <Gateways selected={item} /> : null}
        {section === 'people' ? <People /> : null}
        {section === 'api-keys' ? <ApiKeys /> : null}
        {section === 'destinations' ? <Destinations /> : null}
        {section === 'audit' ? <Audit /> : null}
        {section === 'usage' ? <UsagePage /> : null}
        {section === 'billing' ? <Billing /> : null}
      </section>
    </div>
  );
}
