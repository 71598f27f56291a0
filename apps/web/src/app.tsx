import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, checkSession, get, onSignedOut } from './api';
import { connectLive } from './live';
import { LiveBus } from './live-bus';
import { LiveContext } from './hooks';
import { AttentionPage } from './pages/attention';
import { ComparePage } from './pages/compare';
import { QueuesPage } from './pages/queues';
import { RunPage } from './pages/run';
import { RunsPage } from './pages/runs';
import { useRoute, type Route } from './router';
import { SignIn } from './sign-in';

type Session = 'unknown' | 'signed-in' | 'signed-out';

function Page(props: { route: Route }) {
  const { route } = props;
  switch (route.page) {
    case 'run':
      return <RunPage runId={route.runId} />;
    case 'attention':
      return <AttentionPage runId={route.runId} exportId={route.exportId} />;
    case 'compare':
      return <ComparePage runIds={route.runIds} />;
    case 'queues':
      return <QueuesPage />;
    default:
      return <RunsPage />;
  }
}

export function App() {
  const route = useRoute();
  const [session, setSession] = useState<Session>('unknown');
  const [notice, setNotice] = useState<string | null>(null);
  const [connected, setConnected] = useState(false);
  const bus = useMemo(() => new LiveBus(), []);

  useEffect(() => {
    get<{ authenticated: boolean }>('/session').then(
      (state) => setSession(state.authenticated ? 'signed-in' : 'signed-out'),
      () => setSession('signed-out'),
    );
    return onSignedOut(() => {
      setNotice('Your session has ended: sign in again.');
      setSession('signed-out');
    });
  }, []);

  useEffect(() => {
    if (session !== 'signed-in') return;
    return connectLive({
      onHello: () => {
        setConnected(true);
        bus.hello();
      },
      onJob: (event) => bus.job(event),
      onDown: (closed) => {
        setConnected(false);
        // A stream refused for good may mean the session ended: ask, which signs out on a 401.
        if (closed) void checkSession().catch(() => undefined);
      },
    });
  }, [session, bus]);

  if (session === 'unknown') return <p class="muted">Loading…</p>;
  if (session === 'signed-out')
    return (
      <SignIn
        notice={notice}
        onSignedIn={() => {
          setNotice(null);
          setSession('signed-in');
        }}
      />
    );
  const signOut = async () => {
    await api('DELETE', '/session');
    setSession('signed-out');
  };
  return (
    <LiveContext.Provider value={bus}>
      <header>
        <a class="brand" href="#/runs">
          dinoq
        </a>
        <nav>
          <a href="#/runs" class={route.page === 'runs' || route.page === 'run' ? 'active' : ''}>
            Runs
          </a>
          <a href="#/compare" class={route.page === 'compare' ? 'active' : ''}>
            Compare
          </a>
          <a href="#/queues" class={route.page === 'queues' ? 'active' : ''}>
            Queues &amp; workers
          </a>
        </nav>
        <span class={`live ${connected ? 'on' : 'off'}`} title="updates pushed from the API">
          {connected ? 'live' : 'reconnecting…'}
        </span>
        <button class="link" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main>
        <Page route={route} />
      </main>
    </LiveContext.Provider>
  );
}
