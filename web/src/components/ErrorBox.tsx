import type { ApiError } from '../api/client';

/** An API error in words, with the request id support can look up. */
export function ErrorBox({ error, what }: { error: unknown; what?: string }) {
  if (!error) return null;
  const e = error as ApiError;
  const message = e.message || String(error);
  return (
    <div class="error" role="alert">
      <strong>{what ? `Could not ${what}: ` : ''}</strong>
      {message}
      {e.code && e.code !== 'network' ? <span class="muted"> ({e.code}{e.requestId ? `, request ${e.requestId}` : ''})</span> : null}
      {e.problems?.length ? (
        <ul>
          {e.problems.map((p, i) => (
            <li key={i}>
              <strong>{p.subject}</strong> ({p.field}): {p.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
