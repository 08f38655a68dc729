import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` when `deps` change (and on `reload`), keeping only the latest answer. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [generation, setGeneration] = useState(0);
  const latest = useRef(0);
  useEffect(() => {
    const run = ++latest.current;
    setState((previous) => ({ data: previous.data, loading: true }));
    load().then(
      (data) => run === latest.current && setState({ data, loading: false }),
      (error) => run === latest.current && setState({ error, loading: false }),
    );
    // `load` is a new closure on every render; `deps` say when it asks for something new.
  }, [...deps, generation]);
  const reload = useCallback(() => setGeneration((g) => g + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

const PREFERENCE_CHANGED = 'chronicle:preference';

/**
 * A value kept in localStorage (a preference such as the glucose unit). Every component using
 * the same key follows a change made by any of them (and by another tab).
 */
export function useStoredPreference<T extends string>(key: string, allowed: readonly T[], fallback: T) {
  const read = useCallback((): T => {
    const stored = localStorage.getItem(key) as T | null;
    return stored && allowed.includes(stored) ? stored : fallback;
    // `allowed` and `fallback` are constants of the caller.
  }, [key]);
  const [value, setValue] = useState<T>(read);
  useEffect(() => {
    const update = () => setValue(read());
    const onStorage = (event: StorageEvent) => event.key === key && update();
    window.addEventListener(PREFERENCE_CHANGED, update);
    window.addEventListener('storage', onStorage);
    return () => {
      window.removeEventListener(PREFERENCE_CHANGED, update);
      window.removeEventListener('storage', onStorage);
    };
  }, [key, read]);
  const set = useCallback(
    (next: T) => {
      localStorage.setItem(key, next);
      setValue(next);
      window.dispatchEvent(new Event(PREFERENCE_CHANGED));
    },
    [key],
  );
  return [value, set] as const;
}
