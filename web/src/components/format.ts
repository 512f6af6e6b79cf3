export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 5) return 'just now';
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '—';
}

export function num(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits);
}

export const SEVERITY_RANK: Record<string, number> = { info: 0, warning: 1, critical: 2 };

/** How the audit log names a person (`user:12 ana@example.com`), as people read it. */
export function who(actor: string | null | undefined): string {
  if (!actor) return '—';
  return actor.replace(/^user:\d+ /, '').replace(/^key:/, 'API key ');
}
