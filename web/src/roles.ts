// What the caller may do in a tenant, from `GET /api/v1/auth/me` (the same rule the API's
// access layer applies: viewer < operator < tenant_admin; platform administrators act as
// tenant administrators everywhere).
import type { Me, Role } from './api/types';

const RANK: Record<Role, number> = { viewer: 0, operator: 1, tenant_admin: 2 };

export function roleIn(me: Me, tenant: string): Role | null {
  if (me.platform_admin) return 'tenant_admin';
  return me.tenants.find((g) => g.tenant === tenant)?.role ?? null;
}

export function can(me: Me, tenant: string, needed: Role): boolean {
  const role = roleIn(me, tenant);
  return role !== null && RANK[role] >= RANK[needed];
}
