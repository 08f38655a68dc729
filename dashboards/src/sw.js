// Chronicle's service worker: it shows the alerts that arrive by Web Push as notifications,
// also when no Chronicle page is open, and opens the patient's page when one is clicked.
//
// It caches nothing on purpose: everything the dashboard shows is health data behind the
// patient's sharing rules, and a copy kept on the device would outlive a revoked grant.
// A push carries what its receiver may see (docs/alerts.md): for a trends-only receiver the
// server sends no values.

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** The notification for a push's JSON body (`Notification` in docs/alerts.md). */
function notificationOf(payload) {
  const alert = payload.alert ?? {};
  const patient = payload.patient ?? {};
  const path = patient.id ? `/patients/${encodeURIComponent(patient.id)}` : '/';
  return {
    title: payload.title ?? 'Chronicle',
    options: {
      body: payload.body ?? 'There is a new alert. Open Chronicle to see it.',
      // One notification per alert: a re-trigger or escalation replaces it and alerts again.
      tag: alert.id ? `alert-${alert.id}` : undefined,
      renotify: Boolean(alert.id),
      // An urgent alarm stays until someone acts on it.
      requireInteraction: alert.severity === 'urgent',
      icon: '/icon-192.png',
      badge: '/icon-192.png',
      timestamp: payload.created_at ? Date.parse(payload.created_at) : Date.now(),
      data: { path },
    },
  };
}

self.addEventListener('push', (event) => {
  let payload = {};
  try {
    payload = event.data ? event.data.json() : {};
  } catch {
    // A push that is not JSON still tells the receiver to look.
  }
  const { title, options } = notificationOf(payload);
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const path = event.notification.data?.path ?? '/';
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      const open = windows.find((client) => new URL(client.url).origin === self.location.origin);
      if (open) {
        await open.focus();
        return open.navigate(path);
      }
      return self.clients.openWindow(path);
    })(),
  );
});
