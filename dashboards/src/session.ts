// The log-in session: the bearer token lives in this tab's sessionStorage only (never in a
// cookie, so no other site can make the browser use it), and is forgotten on log-out, on
// erasure and as soon as the API answers 401.

const TOKEN_KEY = 'chronicle.token';
const NOTICE_KEY = 'chronicle.notice';
const RETURN_KEY = 'chronicle.return-to';

type Listener = () => void;
const listeners = new Set<Listener>();

function notify(): void {
  for (const listener of listeners) listener();
}

export const session = {
  token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  start(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
    notify();
  },
  /** Ends the session in this tab, with a message for the log-in page. */
  end(notice?: string): void {
    sessionStorage.removeItem(TOKEN_KEY);
    if (notice) sessionStorage.setItem(NOTICE_KEY, notice);
    notify();
  },
  /** The API refused the token (expired or revoked elsewhere). */
  expired(): void {
    session.end('Your session has ended. Please log in again.');
  },
  /** The message left for the log-in page, once. */
  takeNotice(): string | null {
    const notice = sessionStorage.getItem(NOTICE_KEY);
    sessionStorage.removeItem(NOTICE_KEY);
    return notice;
  },
  /** Where to go after logging in: a page opened before the session existed (an
   * invitation link), so following a link survives the log-in. */
  returnAfterLogin(path: string): void {
    if (path.startsWith('/') && path !== '/login') sessionStorage.setItem(RETURN_KEY, path);
  },
  takeReturnPath(): string {
    const path = sessionStorage.getItem(RETURN_KEY);
    sessionStorage.removeItem(RETURN_KEY);
    return path ?? '/';
  },
  subscribe(listener: Listener): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};
