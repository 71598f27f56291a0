import { useState } from 'preact/hooks';
import { ApiError, post } from './api';

/**
 * Trades the API key for the session cookie. The key goes to POST /session in the body, once; the
 * page keeps no copy (the field is cleared) and the cookie is invisible to scripts.
 */
export function SignIn(props: { notice: string | null; onSignedIn(): void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await post('/session', { apiKey: key });
      setKey('');
      props.onSignedIn();
    } catch (failure) {
      setError(
        failure instanceof ApiError && failure.status === 401
          ? 'That is not an API key of this deployment.'
          : String(failure),
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="sign-in" onSubmit={submit}>
      <h1>dinoq</h1>
      {props.notice && <p class="notice">{props.notice}</p>}
      <label>
        API key
        <input
          type="password"
          name="apiKey"
          autocomplete="current-password"
          value={key}
          onInput={(event) => setKey((event.target as HTMLInputElement).value)}
          required
        />
      </label>
      <button type="submit" disabled={busy}>
        Sign in
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
