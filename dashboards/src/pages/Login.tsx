import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, type Readiness } from '../api';
import { errorMessage, usePageTitle } from '../components/common';
import { navigate } from '../router';
import { session } from '../session';

export function Login() {
  usePageTitle('Log in');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const [notice] = useState(() => session.takeNotice());
  const [readiness, setReadiness] = useState<Readiness | null>(null);

  useEffect(() => {
    api.readiness().then(setReadiness, () => setReadiness(null));
  }, []);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setProblem(null);
    try {
      const { token } = await api.login(email.trim(), password);
      session.start(token);
      navigate(session.takeReturnPath(), { replace: true });
    } catch (error) {
      setProblem(
        error instanceof ApiError && error.status === 401
          ? 'That e-mail and password do not match an account.'
          : errorMessage(error),
      );
      setBusy(false);
    }
  };

  return (
    <main id="main" class="login">
      <h1 tabIndex={-1}>Log in to Chronicle</h1>
      <p class="muted">Remote monitoring for people living with diabetes and high blood pressure.</p>
      {notice && (
        <p class="notice notice-ok" role="status">
          {notice}
        </p>
      )}
      <form onSubmit={submit} class="card form" aria-describedby={problem ? 'login-problem' : undefined}>
        <label for="email">E-mail</label>
        <input
          id="email"
          type="email"
          autocomplete="username"
          required
          value={email}
          onInput={(e) => setEmail(e.currentTarget.value)}
        />
        <label for="password">Password</label>
        <input
          id="password"
          type="password"
          autocomplete="current-password"
          required
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
        {problem && (
          <p id="login-problem" class="notice notice-error" role="alert">
            {problem}
          </p>
        )}
        <button type="submit" class="button button-primary" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
      <p class="server-status" aria-live="polite">
        Server:{' '}
        {readiness === null
          ? 'checking…'
          : readiness.ready
            ? 'ready'
            : `not ready (database ${readiness.database}, broker ${readiness.broker})`}
      </p>
    </main>
  );
}
