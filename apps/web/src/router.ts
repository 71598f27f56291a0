import { useEffect, useState } from 'preact/hooks';

/*
 * Routes live in the URL's fragment (#/runs/abc), so the API serves one page for all of them and
 * reloading any view works.
 */

export type Route =
  | { page: 'runs' }
  | { page: 'run'; runId: string }
  | { page: 'attention'; runId: string; exportId: string }
  | { page: 'compare'; runIds: string[] }
  | { page: 'queues' };

export function parseRoute(hash: string): Route {
  const [path, query = ''] = hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'runs' && parts[1] && parts[2] === 'attention' && parts[3])
    return { page: 'attention', runId: parts[1], exportId: parts[3] };
  if (parts[0] === 'runs' && parts[1]) return { page: 'run', runId: parts[1] };
  if (parts[0] === 'compare') {
    const runs = new URLSearchParams(query).get('runs') ?? '';
    return { page: 'compare', runIds: runs.split(',').filter(Boolean) };
  }
  if (parts[0] === 'queues') return { page: 'queues' };
  return { page: 'runs' };
}

export const runHref = (runId: string) => `#/runs/${encodeURIComponent(runId)}`;
export const attentionHref = (runId: string, exportId: string) =>
  `#/runs/${encodeURIComponent(runId)}/attention/${encodeURIComponent(exportId)}`;
export const compareHref = (runIds: string[]) => `#/compare?runs=${runIds.map(encodeURIComponent).join(',')}`;

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}
