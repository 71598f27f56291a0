import { ApiError } from './api';

/** What the API said went wrong: its message and, for a 400, every reason it gave. */
export function ErrorBox(props: { error: unknown }) {
  if (!props.error) return null;
  const error = props.error;
  const reasons = error instanceof ApiError ? error.reasons : [];
  return (
    <div class="error" role="alert">
      <strong>{error instanceof ApiError ? `${error.status}: ${error.message}` : String(error)}</strong>
      {reasons.length > 0 && (
        <ul class="reasons">
          {reasons.map((reason) => (
            <li key={reason}>{reason}</li>
          ))}
        </ul>
      )}
    </div>
  );
}
