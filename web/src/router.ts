// Client-side routes over the History API; the server answers index.html for each of them.
import { useEffect, useState } from 'preact/hooks';

/** The administration pages of a tenant (tenant administrators only). */
export const ADMIN_SECTIONS = ['sites', 'wells', 'gateways', 'people', 'api-keys', 'destinations', 'audit', 'usage', 'billing'] as const;
export type AdminSection = (typeof ADMIN_SECTIONS)[number];

export type Route =
  | { page: 'sign-in' }
  | { page: 'home' }
  | { page: 'accept-invitation' }
  | { page: 'reset-password' }
  | { page: 'platform-tenants'; slug?: string }
  | { page: 'fleet'; tenant: string }
  | { page: 'alerts'; tenant: string; alert?: number }
  | { page: 'well'; tenant: string; well: number }
  | { page: 'reports'; tenant: string }
  | { page: 'insights'; tenant: string }
  | { page: 'admin'; tenant: string; section: AdminSection; item?: string }
  | { page: 'not-found' };

/** Pages that work signed out (the links of emails). */
export const PUBLIC_PAGES = ['accept-invitation', 'reset-password'];

export function parse(path: string): Route {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: 'home' };
  if (parts.length === 1 && parts[0] === 'sign-in') return { page: 'sign-in' };
  if (parts.length === 1 && parts[0] === 'accept-invitation') return { page: 'accept-invitation' };
  if (parts.length === 1 && parts[0] === 'reset-password') return { page: 'reset-password' };
  if (parts[0] === 'admin' && parts[1] === 'tenants' && parts.length <= 3) {
    return { page: 'platform-tenants', slug: parts[2] };
  }
  if (parts[0] === 't' && parts[1]) {
    const tenant = parts[1];
    if (parts.length === 2) return { page: 'fleet', tenant };
    if (parts[2] === 'alerts' && parts.length === 3) return { page: 'alerts', tenant };
    if (parts[2] === 'alerts' && parts.length === 4 && /^\d+$/.test(parts[3])) {
      return { page: 'alerts', tenant, alert: Number(parts[3]) };
    }
    if (parts[2] === 'wells' && parts.length === 4 && /^\d+$/.test(parts[3])) {
      return { page: 'well', tenant, well: Number(parts[3]) };
    }
    if (parts[2] === 'reports' && parts.length === 3) return { page: 'reports', tenant };
    if (parts[2] === 'insights' && parts.length === 3) return { page: 'insights', tenant };
    if (parts[2] === 'admin' && parts.length === 3) return { page: 'admin', tenant, section: 'sites' };
    if (parts[2] === 'admin' && parts.length <= 5 && (ADMIN_SECTIONS as readonly string[]).includes(parts[3])) {
      return { page: 'admin', tenant, section: parts[3] as AdminSection, item: parts[4] };
    }
  }
  return { page: 'not-found' };
}

const listeners = new Set<() => void>();
window.addEventListener('popstate', () => listeners.forEach((l) => l()));

export function navigate(path: string, replace = false): void {
  if (path === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  listeners.forEach((l) => l());
}

export function useLocation(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    listeners.add(update);
    return () => {
      listeners.delete(update);
    };
  }, []);
  return path;
}

/** A query parameter of the current URL (the token of an emailed link). */
export function queryParam(name: string): string | null {
  return new URLSearchParams(location.search).get(name);
}

const t = (tenant: string) => `/t/${encodeURIComponent(tenant)}`;
export const fleetPath = (tenant: string) => t(tenant);
export const alertsPath = (tenant: string, id?: number) => `${t(tenant)}/alerts${id ? `/${id}` : ''}`;
export const wellPath = (tenant: string, w: number) => `${t(tenant)}/wells/${w}`;
export const reportsPath = (tenant: string) => `${t(tenant)}/reports`;
export const insightsPath = (tenant: string) => `${t(tenant)}/insights`;
export const adminPath = (tenant: string, section: AdminSection = 'sites', item?: string) =>
  `${t(tenant)}/admin/${section}${item ? `/${encodeURIComponent(item)}` : ''}`;
export const platformTenantsPath = (slug?: string) => `/admin/tenants${slug ? `/${encodeURIComponent(slug)}` : ''}`;
