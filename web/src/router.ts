// Client-side routes over the History API; the server answers index.html for each of them.
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'sign-in' }
  | { page: 'home' }
  | { page: 'fleet'; tenant: string }
  | { page: 'alerts'; tenant: string; alert?: number }
  | { page: 'well'; tenant: string; well: number }
  | { page: 'not-found' };

export function parse(path: string): Route {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: 'home' };
  if (parts.length === 1 && parts[0] === 'sign-in') return { page: 'sign-in' };
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

export const fleetPath = (t: string) => `/t/${encodeURIComponent(t)}`;
export const alertsPath = (t: string, id?: number) => `/t/${encodeURIComponent(t)}/alerts${id ? `/${id}` : ''}`;
export const wellPath = (t: string, w: number) => `/t/${encodeURIComponent(t)}/wells/${w}`;
