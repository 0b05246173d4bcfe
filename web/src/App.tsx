import { useEffect, useState } from 'react';
import { getToken, handleUnauthorized, setToken } from './api';
import { type ThemeChoice, setThemeChoice, themeChoice } from './theme';
import { AccountsPage } from './pages/Accounts';
import { AlertsPage } from './pages/Alerts';
import { AuditPage } from './pages/Audit';
import { KeysPage } from './pages/Keys';
import { LogsPage } from './pages/Logs';
import { TokensPage } from './pages/Tokens';
import { OverviewPage } from './pages/Overview';
import { SignIn } from './pages/SignIn';

const PAGES = [
  { hash: '#/overview', label: 'Overview', render: () => <OverviewPage /> },
  { hash: '#/keys', label: 'Keys', render: () => <KeysPage /> },
  { hash: '#/accounts', label: 'Accounts', render: () => <AccountsPage /> },
  { hash: '#/tokens', label: 'Tokens', render: () => <TokensPage /> },
  { hash: '#/logs', label: 'Logs', render: () => <LogsPage /> },
  { hash: '#/alerts', label: 'Alerts', render: () => <AlertsPage /> },
  { hash: '#/audit', label: 'Audit', render: () => <AuditPage /> },
] as const;

function useHash(): string {
  const [hash, setHash] = useState(window.location.hash || '#/overview');
  useEffect(() => {
    const on = () => setHash(window.location.hash || '#/overview');
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return hash;
}

export function App() {
  const [signedIn, setSignedIn] = useState(getToken() !== null);
  const hash = useHash();
  const [theme, setTheme] = useState<ThemeChoice>(themeChoice());
  useEffect(() => handleUnauthorized(() => {
    setToken(null);
    setSignedIn(false);
  }), []);

  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} />;
  // A page's hash may carry a query (#/keys?account=3): the page reads it.
  const page = PAGES.find((p) => p.hash === hash.split('?')[0]) ?? PAGES[0];
  return (
    <div className="layout">
      <header>
        <span className="brand">tavily-pool</span>
        <nav aria-label="Main">
          {PAGES.map((p) => (
            <a key={p.hash} href={p.hash} aria-current={p === page ? 'page' : undefined}>
              {p.label}
            </a>
          ))}
        </nav>
        <label className="theme">
          Theme{' '}
          <select
            value={theme}
            onChange={(e) => {
              const choice = e.target.value as ThemeChoice;
              setThemeChoice(choice);
              setTheme(choice);
            }}
          >
            <option value="system">system</option>
            <option value="light">light</option>
            <option value="dark">dark</option>
          </select>
        </label>
        <button
          type="button"
          className="secondary"
          onClick={() => {
            setToken(null);
            setSignedIn(false);
          }}
        >
          Sign out
        </button>
      </header>
      <main>{page.render()}</main>
    </div>
  );
}
