// The dashboard as an installable app: its service worker (public/sw.js) shows alerts pushed
// to this browser as notifications, even with no Chronicle page open.

/** Registers the service worker; a browser without one simply gets no push notifications. */
export async function registerServiceWorker(): Promise<ServiceWorkerRegistration | null> {
  if (!('serviceWorker' in navigator)) return null;
  try {
    return await navigator.serviceWorker.register('/sw.js', { scope: '/' });
  } catch (error) {
    console.warn('the service worker did not register; alerts will not be pushed here', error);
    return null;
  }
}
