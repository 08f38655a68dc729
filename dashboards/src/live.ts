// The live alert stream, GET /v1/alerts/stream (Server-Sent Events). EventSource cannot send
// the Authorization header, so the stream is read with fetch() and a ReadableStream; the token
// stays a bearer header. After a drop it reconnects with Last-Event-ID (the last event's id,
// or the position the server opened the stream with), so the server first replays every
// event missed meanwhile.

import type { AlertEvent } from './api';
import { session } from './session';

/** Waits before reconnecting: 1 s, doubling up to 30 s, reset by a successful connection. */
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30_000;

export type StreamState = 'connecting' | 'live' | 'reconnecting';

export interface AlertStreamHandlers {
  onEvent: (event: AlertEvent) => void;
  onState: (state: StreamState) => void;
}

/** One parsed SSE event (only the fields Chronicle sends). */
interface SseEvent {
  id: string | null;
  event: string;
  data: string;
}

/** Splits SSE text into events; returns the events and the unfinished rest. */
export function parseSse(buffer: string): { events: SseEvent[]; rest: string } {
  const events: SseEvent[] = [];
  const normalised = buffer.replace(/\r\n?/g, '\n');
  const blocks = normalised.split('\n\n');
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    let id: string | null = null;
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue; // keep-alive comments
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    // A block with an id and no data (the stream's opening position) is kept for its id.
    if (data.length > 0 || id !== null) events.push({ id, event, data: data.join('\n') });
  }
  return { events, rest };
}

/** Opens the stream and keeps it open until the returned function is called. */
export function openAlertStream(handlers: AlertStreamHandlers): () => void {
  const abort = new AbortController();
  let lastEventId: string | null = null;
  let retry = FIRST_RETRY_MS;

  const connect = async (): Promise<void> => {
    const token = session.token();
    if (!token) return;
    const headers: Record<string, string> = { Accept: 'text/event-stream', Authorization: `Bearer ${token}` };
    if (lastEventId) headers['Last-Event-ID'] = lastEventId;
    const response = await fetch('/v1/alerts/stream', { headers, cache: 'no-store', signal: abort.signal });
    if (response.status === 401) {
      session.expired();
      return;
    }
    if (!response.ok || !response.body) throw new Error(`the alert stream answered ${response.status}`);
    handlers.onState('live');
    retry = FIRST_RETRY_MS;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const { events, rest } = parseSse(buffer);
      buffer = rest;
      for (const event of events) {
        if (event.id) lastEventId = event.id;
        if (event.event !== 'alert' || event.data === '') continue;
        try {
          handlers.onEvent(JSON.parse(event.data) as AlertEvent);
        } catch (error) {
          console.warn('an alert event could not be read', error);
        }
      }
    }
  };

  const loop = async () => {
    handlers.onState('connecting');
    while (!abort.signal.aborted && session.token()) {
      try {
        await connect();
      } catch {
        // A dropped connection or a server restart: try again below.
      }
      if (abort.signal.aborted || !session.token()) return;
      handlers.onState('reconnecting');
      await new Promise((resolve) => setTimeout(resolve, retry));
      retry = Math.min(retry * 2, MAX_RETRY_MS);
    }
  };
  void loop();
  return () => abort.abort();
}
