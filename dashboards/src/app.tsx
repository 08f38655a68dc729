// The application shell: the session, the top bar and the page for the current path.
//
// Pages: /login; / (the care team's risk-ordered panel, and the records a patient or guardian
// holds); /invitations/{code} (a care team's invitation, opened by a patient or guardian);
// /patients/{id}[/sharing|/access-log|/data] (the patient's own pages for the patient
// and their guardians), /patients/{id}[/trends|/daily|/blood-pressure|/alerts] (the clinical
// page for a care team). Clinicians and caregivers get live alerts on every page.

import { useEffect, useState } from 'preact/hooks';
import { api, type Me } from './api';
import { AlertFeedProvider, LiveStatus } from './components/AlertFeed';
import { ErrorNotice, Link, Loading } from './components/common';
import { useAsync } from './hooks';
import { Home } from './pages/Home';
import { InvitationPage } from './pages/Invitation';
import { Login } from './pages/Login';
import { NotFound } from './pages/NotFound';
import { NotificationsPage } from './pages/Notifications';
import { PatientPage } from './pages/PatientPage';
import { navigate, parseRoute, usePath } from './router';
import { session } from './session';

const ROLE_LABELS: Record<string, string> = {
  patient: 'Patient',
  clinician: 'Clinician',
  caregiver: 'Caregiver',
  researcher: 'Researcher',
  admin: 'Administrator',
};

function useToken(): string | null {
  const [token, setToken] = useState(session.token());
  useEffect(() => session.subscribe(() => setToken(session.token())), []);
  return token;
}

export function App() {
  const token = useToken();
  const path = usePath();
  const route = parseRoute(path);

  useEffect(() => {
    if (!token && route.page !== 'login') {
      if (route.page === 'invitation') session.returnAfterLogin(path);
      navigate('/login', { replace: true });
    }
    if (token && route.page === 'login') navigate(session.takeReturnPath(), { replace: true });
  }, [token, route.page]);

  if (!token) return route.page === 'login' ? <Login /> : null;
  return <SignedIn key={token} path={path} />;
}

function SignedIn(props: { path: string }) {
  const me = useAsync(() => api.me(), []);
  const route = parseRoute(props.path);
  return (
    <AlertFeedProvider me={me.data}>
      <a class="skip-link" href="#main">
        Skip to main content
      </a>
      <TopBar me={me.data} />
      {me.error ? (
        <main id="main">
          <ErrorNotice error={me.error} what="your account" />
        </main>
      ) : !me.data ? (
        <main id="main">
          <Loading what="your account" />
        </main>
      ) : route.page === 'home' ? (
        <Home me={me.data} />
      ) : route.page === 'notifications' ? (
        <NotificationsPage />
      ) : route.page === 'invitation' ? (
        <InvitationPage me={me.data} code={route.code} />
      ) : route.page === 'patient' ? (
        <PatientPage key={route.patientId} me={me.data} patientId={route.patientId} section={route.section} />
      ) : (
        <NotFound />
      )}
    </AlertFeedProvider>
  );
}

function TopBar(props: { me: Me | undefined }) {
  const [busy, setBusy] = useState(false);
  const logOut = async () => {
    setBusy(true);
    try {
      await api.logout();
    } catch {
      // The token is forgotten here whatever the server answered.
    }
    session.end('You have logged out.');
  };
  return (
    <header class="top-bar">
      <Link href="/" class="brand">
        <img src="/favicon.svg" alt="" width="28" height="28" />
        Chronicle
      </Link>
      {props.me && (
        <div class="user">
          <span data-testid="user-name">
            <strong>{props.me.display_name}</strong>{' '}
            <span class="muted">{ROLE_LABELS[props.me.role] ?? props.me.role}</span>
          </span>
          <LiveStatus />
          <Link href="/notifications">Notifications</Link>
          <button type="button" class="button" onClick={logOut} disabled={busy}>
            Log out
          </button>
        </div>
      )}
    </header>
  );
}
