import { type FormEvent, type ReactNode, useState } from 'react';
import { Trans, useTranslation } from 'react-i18next';
import { ApiError, api, setToken } from '../api';
import { ErrorAlert } from '../components';

export function SignIn({ onSignedIn, language }: { onSignedIn: () => void; language: ReactNode }) {
  const { t } = useTranslation();
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
      setError(err instanceof ApiError && err.status === 401 ? t('signIn.wrong') : t('signIn.unreachable', { error: (err as Error).message }));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin">
      <h1 translate="no">tavily-pool</h1>
      <form onSubmit={submit} aria-label={t('signIn.form')}>
        <label htmlFor="admin-token">{t('signIn.token')}</label>
        <input id="admin-token" type="password" autoComplete="current-password" value={token} onChange={(e) => setValue(e.target.value)} required />
        <p className="hint">
          <Trans i18nKey="signIn.hint" components={{ code: <code translate="no" /> }} />
        </p>
        <button type="submit" disabled={busy || token.trim() === ''}>
          {busy ? t('signIn.signingIn') : t('signIn.submit')}
        </button>
        <ErrorAlert message={error} />
      </form>
      <div className="toolbar">{language}</div>
    </main>
  );
}
