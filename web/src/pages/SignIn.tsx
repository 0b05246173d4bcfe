import { type FormEvent, useState } from 'react';
import { ApiError, api, setToken } from '../api';
import { ErrorAlert } from '../components';

export function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [token, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api('/summary', { token: token.trim() });
      setToken(token.trim());
      onSignedIn();
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'That admin token is not right.' : `Cannot reach the server: ${(err as Error).message}`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin">
      <h1>tavily-pool</h1>
      <form onSubmit={submit} aria-label="Sign in">
        <label htmlFor="admin-token">Admin token</label>
        <input id="admin-token" type="password" autoComplete="current-password" value={token} onChange={(e) => setValue(e.target.value)} required />
        <p className="hint">Printed at first start, and kept in data/admin-token.</p>
        <button type="submit" disabled={busy || token.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <ErrorAlert message={error} />
      </form>
    </main>
  );
}
