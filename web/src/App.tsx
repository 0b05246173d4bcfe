import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { getToken, handleUnauthorized, setToken } from './api';
import { LANGUAGES, useFormat } from './i18n';
import { AccountsPage } from './pages/Accounts';
import { AlertsPage } from './pages/Alerts';
import { AuditPage } from './pages/Audit';
import { KeyDetailPage } from './pages/KeyDetail';
import { KeysPage } from './pages/Keys';
import { LogsPage } from './pages/Logs';
import { OverviewPage } from './pages/Overview';
import { SignIn } from './pages/SignIn';
import { TokensPage } from './pages/Tokens';
import { type ThemeChoice, setThemeChoice, themeChoice } from './theme';

const PAGES = [
  { hash: '#/overview', label: 'nav.overview', render: () => <OverviewPage /> },
  { hash: '#/keys', label: 'nav.keys', render: () => <KeysPage /> },
  { hash: '#/accounts', label: 'nav.accounts', render: () => <AccountsPage /> },
  { hash: '#/tokens', label: 'nav.tokens', render: () => <TokensPage /> },
  { hash: '#/logs', label: 'nav.logs', render: () => <LogsPage /> },
  { hash: '#/alerts', label: 'nav.alerts', render: () => <AlertsPage /> },
  { hash: '#/audit', label: 'nav.audit', render: () => <AuditPage /> },
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
  const { t, i18n } = useTranslation();
  const f = useFormat();
  const qc = useQueryClient();
  const [signedIn, setSignedIn] = useState(getToken() !== null);
  const hash = useHash();
  const [theme, setTheme] = useState<ThemeChoice>(themeChoice());
  const signOut = () => {
    setToken(null);
    qc.clear();
    setSignedIn(false);
  };
  useEffect(() => handleUnauthorized(signOut), []);
  useEffect(() => {
    document.title = t('app.title');
  }, [t]);

  const language = (
    <label className="language">
      {t('app.language')}{' '}
      <select value={i18n.resolvedLanguage} onChange={(e) => void i18n.changeLanguage(e.target.value)}>
        {LANGUAGES.map((l) => (
          <option key={l.code} value={l.code} lang={l.code}>
            {l.name}
          </option>
        ))}
      </select>
    </label>
  );
  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} language={language} />;
  // A page's hash may carry a query (#/keys?account=3) or an id (#/keys/12): the page reads it.
  const path = hash.split('?')[0]!;
  const keyId = /^#\/keys\/(\d+)$/.exec(path)?.[1];
  const page = keyId ? PAGES[1] : (PAGES.find((p) => p.hash === path) ?? PAGES[0]);
  return (
    <div className="layout">
      {/* The hash is the page's route: the skip link moves the focus without changing it. */}
      <a
        className="skip"
        href="#main"
        onClick={(e) => {
          e.preventDefault();
          document.getElementById('main')?.focus();
        }}
      >
        {t('app.skip')}
      </a>
      <header>
        <span className="brand" translate="no">
          tavily-pool
        </span>
        <nav aria-label={t('app.mainNav')}>
          {PAGES.map((p) => (
            <a key={p.hash} href={p.hash} aria-current={p === page ? 'page' : undefined}>
              {t(p.label)}
            </a>
          ))}
        </nav>
        <div className="header-tools">
          {language}
          <label className="theme">
            {t('app.theme')}{' '}
            <select
              value={theme}
              onChange={(e) => {
                const choice = e.target.value as ThemeChoice;
                setThemeChoice(choice);
                setTheme(choice);
              }}
            >
              <option value="system">{t('app.themes.system')}</option>
              <option value="light">{t('app.themes.light')}</option>
              <option value="dark">{t('app.themes.dark')}</option>
            </select>
          </label>
          <button type="button" className="secondary" onClick={signOut}>
            {t('app.signOut')}
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {keyId ? <KeyDetailPage id={Number(keyId)} /> : page.render()}
      </main>
      <footer className="muted">{t('app.timeZone', { tz: f.timeZone })}</footer>
    </div>
  );
}
