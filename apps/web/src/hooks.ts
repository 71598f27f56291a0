import { createContext } from 'preact';
import { useCallback, useContext, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api';
import { LiveBus, type LiveSubscriber } from './live-bus';

export const LiveContext = createContext<LiveBus>(new LiveBus());

/** Live events while the calling view shows; the handlers may change between renders. */
export function useLive(subscriber: LiveSubscriber): void {
  const bus = useContext(LiveContext);
  const latest = useRef(subscriber);
  latest.current = subscriber;
  useEffect(
    () =>
      bus.subscribe({
        onHello: () => latest.current.onHello?.(),
        onJob: (event) => latest.current.onJob?.(event),
      }),
    [bus],
  );
}

export interface Resource<T> {
  data: T | null;
  error: ApiError | Error | null;
  reload(): void;
}

/**
 * Data from the API, refetched when `deps` change or on reload(). An answer that arrives after a
 * newer request was made is dropped, so a slow old answer never overwrites a new one.
 */
export function useResource<T>(load: () => Promise<T>, deps: unknown[]): Resource<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const generation = useRef(0);
  const loader = useRef(load);
  loader.current = load;
  const reload = useCallback(() => {
    const mine = ++generation.current;
    loader.current().then(
      (value) => {
        if (mine !== generation.current) return;
        setData(value);
        setError(null);
      },
      (failure: Error) => {
        if (mine === generation.current) setError(failure);
      },
    );
  }, []);
  useEffect(() => {
    setData(null);
    reload();
  }, deps);
  return { data, error, reload };
}

/** `action` at most once per `ms`, trailing: bursts of events cause one refetch. */
export function useThrottled(action: () => void, ms: number): () => void {
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const latest = useRef(action);
  latest.current = action;
  useEffect(() => () => clearTimeout(timer.current ?? undefined), []);
  return useCallback(() => {
    if (timer.current !== null) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      latest.current();
    }, ms);
  }, [ms]);
}
