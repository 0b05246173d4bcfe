import { execFileSync } from 'node:child_process';
import type { Page } from 'playwright-core';

/** Debian's chromium, never a downloaded browser; null when it is not installed. */
export function chromiumPath(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

/** Every string of a catalogue (nested objects of strings). */
export function catalogueStrings(c: unknown): string[] {
  if (typeof c === 'string') return [c];
  if (c && typeof c === 'object') return Object.values(c).flatMap(catalogueStrings);
  return [];
}

/**
 * The words of the English catalogue (three letters or more, lower case), less the names that
 * stay as they are in every language (products, formats, protocols).
 */
export function englishWords(catalogue: unknown, keep: readonly string[]): Set<string> {
  const words = new Set<string>();
  for (const s of catalogueStrings(catalogue)) {
    // Interpolations ({{name}}) and markup (<code>…</code>) are not words of the sentence.
    const text = s.replace(/\{\{[^}]*\}\}/g, ' ').replace(/<code>.*?<\/code>/g, ' ').replace(/<[^>]*>/g, ' ');
    for (const w of text.split(/[^A-Za-z]+/)) if (w.length >= 3) words.add(w.toLowerCase());
  }
  for (const k of keep) words.delete(k.toLowerCase());
  return words;
}

/**
 * English words of the catalogue found in the page's visible text and placeholders, outside
 * what is marked as not to be translated (`translate="no"`, `lang="en"`: identifiers, masked
 * keys, Tavily's own messages) and outside `data` (names the test itself gave things).
 */
export async function untranslatedWords(page: Page, words: Set<string>, data: readonly string[], context = true): Promise<string[]> {
  // A string, not a function: this module is compiled without the DOM's types.
  const text = await page.evaluate<string>(`(() => {
    const skip = (el) => el.closest('[translate="no"], [lang="en"], code, pre, script, style, [hidden]') !== null;
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      // Text in closed <details> is still part of the page, so it is checked too.
      if (n.parentElement && !skip(n.parentElement)) out.push(n.textContent ?? '');
    }
    for (const el of document.querySelectorAll('[placeholder], [aria-label], [title]')) {
      if (skip(el)) continue;
      for (const a of ['placeholder', 'aria-label', 'title']) {
        const v = el.getAttribute(a);
        if (v) out.push(v);
      }
    }
    return out.join('\\n');
  })()`);
  let rest = text;
  for (const d of data) rest = rest.split(d).join(' ');
  // Each word once, with what surrounds it (where to look).
  const found = new Map<string, string>();
  for (const m of rest.matchAll(/[A-Za-z]+/g)) {
    if (words.has(m[0].toLowerCase()) && !found.has(m[0])) found.set(m[0], rest.slice(Math.max(0, m.index - 20), m.index + m[0].length + 20).replace(/\s+/g, ' '));
  }
  return [...found].map(([w, around]) => (context ? `${w} («${around}»)` : w));
}

/** How far the page is wider than the window (0: no horizontal scroll). */
export function horizontalOverflow(page: Page): Promise<number> {
  return page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
}
