// The signed-in session: tokens kept in memory and in sessionStorage (this tab only,
// gone when it closes). Tokens are never logged or put in URLs.
import type { Tokens } from './types';

const KEY = 'wellpulse.session';

export interface Session {
  access: string;
  refresh: string;
  email: string;
}

let current: Session | null = load();
const listeners = new Set<() => void>();

function load(): Session | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

export function session(): Session | null {
  return current;
}

export function store(tokens: Tokens, email: string): void {
  current = { access: tokens.access_token, refresh: tokens.refresh_token, email };
  sessionStorage.setItem(KEY, JSON.stringify(current));
  listeners.forEach((l) => l());
}

export function clear(): void {
  current = null;
  sessionStorage.removeItem(KEY);
  listeners.forEach((l) => l());
}

export function onChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
