// A small history router: the server answers every application path with index.html, and
// this maps the path to a page.

import { useEffect, useState } from 'preact/hooks';

const NAVIGATED = 'chronicle:navigated';

export function navigate(path: string, options: { replace?: boolean } = {}): void {
  if (options.replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  window.dispatchEvent(new Event(NAVIGATED));
}

/** The current path; re-renders on navigation and on the browser's back and forward. */
export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    window.addEventListener('popstate', update);
    window.addEventListener(NAVIGATED, update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener(NAVIGATED, update);
    };
  }, []);
  return path;
}

export type Route =
  | { page: 'login' }
  | { page: 'home' }
  | { page: 'patient'; patientId: string; section: PatientSection }
  | { page: 'invitation'; code: string }
  | { page: 'notifications' }
  | { page: 'not-found' };

/** The sections of a patient's page: the patient's own (alerts, sharing, access log, data) and the
 * care team's clinical ones (trends, daily overlays, blood pressure, alerts). */
export type OwnSection = 'readings' | 'alerts' | 'sharing' | 'access-log' | 'data';
export type ClinicalSection = 'readings' | 'trends' | 'daily' | 'blood-pressure' | 'alerts';
export type PatientSection = OwnSection | ClinicalSection;
export const OWN_SECTIONS: OwnSection[] = ['readings', 'alerts', 'sharing', 'access-log', 'data'];
export const CLINICAL_SECTIONS: ClinicalSection[] = ['readings', 'trends', 'daily', 'blood-pressure', 'alerts'];
const SECTIONS: PatientSection[] = [...OWN_SECTIONS, ...CLINICAL_SECTIONS];

export function parseRoute(path: string): Route {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: 'home' };
  if (parts[0] === 'login' && parts.length === 1) return { page: 'login' };
  if (parts[0] === 'notifications' && parts.length === 1) return { page: 'notifications' };
  if (parts[0] === 'invitations' && parts.length === 2) return { page: 'invitation', code: parts[1] };
  if (parts[0] === 'patients' && (parts.length === 2 || parts.length === 3)) {
    const section = (parts[2] ?? 'readings') as PatientSection;
    if (SECTIONS.includes(section)) return { page: 'patient', patientId: parts[1], section };
  }
  return { page: 'not-found' };
}

/** The page where a patient opens a care team's invitation. */
export function invitationPath(code: string): string {
  return `/invitations/${encodeURIComponent(code.trim())}`;
}

export function patientPath(patientId: string, section: PatientSection = 'readings'): string {
  const base = `/patients/${encodeURIComponent(patientId)}`;
  return section === 'readings' ? base : `${base}/${section}`;
}

/** Follows in-app links without reloading; modified clicks (new tab) behave as usual. */
export function onLinkClick(event: MouseEvent): void {
  const anchor = event.currentTarget as HTMLAnchorElement;
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (anchor.origin !== location.origin) return;
  event.preventDefault();
  navigate(anchor.pathname + anchor.search);
}
