// The pages of emailed links, which work signed out: accepting an invitation and resetting a
// password (`/accept-invitation?token=…`, `/reset-password?token=…`). The token is read from
// the URL once and sent only in a request body.
import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { ErrorBox } from '../components/ErrorBox';
import { Link } from '../components/Link';
import { useAction, value } from '../components/hooks';
import { queryParam } from '../router';

function Card({ title, children }: { title: string; children: preact.ComponentChildren }) {
  return (
    <main class="sign-in" id="main">
      <p class="brand-big">WellPulse</p>
      <div class="card">
        <h1>{title}</h1>
        {children}
      </div>
    </main>
  );
}

export function AcceptInvitation() {
  const [token] = useState(() => queryParam('token'));
  const [password, setPassword] = useState('');
  const [done, setDone] = useState(false);
  const action = useAction();
  if (!token) {
    return (
      <Card title="Accept an invitation">
        <p role="alert" class="error">This link has no invitation token: open the link of the invitation email again.</p>
      </Card>
    );
  }
  if (done) {
    return (
      <Card title="Invitation accepted">
        <p role="status">You have joined. Sign in with your email and password.</p>
        <Link href="/">Sign in</Link>
      </Card>
    );
  }
  const submit = async (e: Event) => {
    e.preventDefault();
    const ok = await action.run(async () => {
      await api<void>('POST', '/api/v1/auth/invitations/accept', password ? { token, password } : { token });
      return true;
    });
    if (ok) setDone(true);
  };
  return (
    <Card title="Accept an invitation">
      <form aria-label="Accept the invitation" onSubmit={(e) => void submit(e)}>
        <p>Choose your password to join. If you already have a WellPulse account, leave it empty.</p>
        <label>
          New password
          <input type="password" autoComplete="new-password" value={password} onInput={(e) => setPassword(value(e))} />
        </label>
        <ErrorBox error={action.error} what="accept the invitation" />
        <button type="submit" class="primary" disabled={action.busy}>
          {action.busy ? 'Joining…' : 'Join'}
        </button>
      </form>
    </Card>
  );
}

export function ResetPassword() {
  const [token] = useState(() => queryParam('token'));
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [done, setDone] = useState<'sent' | 'changed' | null>(null);
  const action = useAction();
  if (done === 'sent') {
    return (
      <Card title="Check your email">
        <p role="status">If {email} has an account, a link to choose a new password is on its way.</p>
        <Link href="/">Back to sign-in</Link>
      </Card>
    );
  }
  if (done === 'changed') {
    return (
      <Card title="Password changed">
        <p role="status">Your password is changed and every other session is signed out. Sign in with the new one.</p>
        <Link href="/">Sign in</Link>
      </Card>
    );
  }
  if (!token) {
    const request = async (e: Event) => {
      e.preventDefault();
      const ok = await action.run(async () => {
        await api<void>('POST', '/api/v1/auth/password-reset', { email: email.trim() });
        return true;
      });
      if (ok) setDone('sent');
    };
    return (
      <Card title="Reset your password">
        <form aria-label="Ask for a reset link" onSubmit={(e) => void request(e)}>
          <p>We email you a link to choose a new password.</p>
          <label>
            Email
            <input type="email" autoComplete="username" required value={email} onInput={(e) => setEmail(value(e))} />
          </label>
          <ErrorBox error={action.error} what="ask for a reset link" />
          <button type="submit" class="primary" disabled={action.busy}>Send the link</button>
        </form>
        <p><Link href="/">Back to sign-in</Link></p>
      </Card>
    );
  }
  const confirm = async (e: Event) => {
    e.preventDefault();
    const ok = await action.run(async () => {
      await api<void>('POST', '/api/v1/auth/password-reset/confirm', { token, password });
      return true;
    });
    if (ok) setDone('changed');
  };
  return (
    <Card title="Choose a new password">
      <form aria-label="Password reset" onSubmit={(e) => void confirm(e)}>
        <label>
          New password
          <input type="password" autoComplete="new-password" required value={password} onInput={(e) => setPassword(value(e))} />
        </label>
        <ErrorBox error={action.error} what="change the password" />
        <button type="submit" class="primary" disabled={action.busy}>Change the password</button>
      </form>
    </Card>
  );
}
