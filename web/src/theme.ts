/** Light or dark: the system's setting, unless the toggle chose one (kept in localStorage). */
export type ThemeChoice = 'system' | 'light' | 'dark';

const KEY = 'tavily-pool-theme';
const dark = () => window.matchMedia('(prefers-color-scheme: dark)');

export function themeChoice(): ThemeChoice {
  const v = localStorage.getItem(KEY);
  return v === 'light' || v === 'dark' ? v : 'system';
}

/** Sets `data-theme` on <html> from the choice (and, for `system`, the system's setting now). */
export function applyTheme(choice: ThemeChoice = themeChoice()): void {
  const resolved = choice === 'system' ? (dark().matches ? 'dark' : 'light') : choice;
  document.documentElement.dataset.theme = resolved;
}

export function setThemeChoice(choice: ThemeChoice): void {
  if (choice === 'system') localStorage.removeItem(KEY);
  else localStorage.setItem(KEY, choice);
  applyTheme(choice);
}

/** Follows the system's setting while the choice is `system`. */
export function followSystemTheme(): void {
  applyTheme();
  dark().addEventListener('change', () => {
    if (themeChoice() === 'system') applyTheme('system');
  });
}
