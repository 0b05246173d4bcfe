/**
 * The layers of src/, bottom first, written once: a file may import files of its own layer or of
 * a layer below, never above; and no files import each other in a circle. docs/architecture.md
 * says what each layer holds. The check reads the import lines of every file under src/ (static
 * imports, `export … from`, and `import()`), so that a new arrow up fails here rather than in a
 * review.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { projectRoot } from '../support/entry.js';

export const LAYERS: readonly (readonly string[])[] = [
  // helpers that know nothing of the product
  ['src/text.ts', 'src/paths.ts', 'src/slices.ts', 'src/net.ts', 'src/forecast.ts', 'src/cycles.ts', 'src/lifecycle.ts'],
  // configuration, secrets, sealing, logging
  ['src/config.ts', 'src/crypto.ts', 'src/secrets.ts', 'src/logger.ts'],
  // the tables' types
  ['src/db/schema.ts'],
  // the API's shapes (TypeBox): every door and the dashboard read them
  ['src/schemas/'],
  // the database: connection, migrations, one repository per table
  ['src/db/'],
  // HTTP helpers shared by the doors: error answers, input checks
  ['src/http/'],
  // Tavily: the upstream client, /usage, error classes
  ['src/tavily/'],
  // the key pool's state, its one writer, and its outbox; the metrics that read them
  ['src/pool/', 'src/metrics.ts'],
  // the gateway core: admission, budgets, endpoints, forwarding, accounting
  ['src/gateway/'],
  // features around the core
  ['src/audit/', 'src/cluster/', 'src/alerts/', 'src/quota/'],
  // admin use cases: each owns its transaction, audit row and change notice
  ['src/services/'],
  // the doors (REST, MCP), the admin routes and the app's other plugins
  ['src/doors/', 'src/admin/', 'src/plugins/'],
  // wiring: the context builds the parts; the app assembles the plugins
  ['src/context.ts', 'src/app.ts'],
  // processes: the server and the command line
  ['src/server.ts', 'src/cli.ts', 'src/cli/'],
];

/** The layer of a file under src/: the longest prefix that names it. */
export function layerOf(file: string): number {
  let best = -1;
  let bestLength = -1;
  LAYERS.forEach((prefixes, i) => {
    for (const p of prefixes) {
      if ((file === p || (p.endsWith('/') && file.startsWith(p))) && p.length > bestLength) {
        best = i;
        bestLength = p.length;
      }
    }
  });
  return best;
}

export interface Arrow {
  from: string;
  to: string;
}

/** Every relative import of every .ts file under `dir`, as paths from the project root. */
export function importArrows(root: string, dir = 'src'): Arrow[] {
  const files = readdirSync(path.join(root, dir), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.posix.join(dir, f.split(path.sep).join('/')));
  const arrows: Arrow[] = [];
  for (const from of files) {
    const text = readFileSync(path.join(root, from), 'utf8');
    const specs = [
      ...text.matchAll(/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"](\.{1,2}\/[^'"]+)['"]/gms),
      ...text.matchAll(/^\s*import\s*['"](\.{1,2}\/[^'"]+)['"]/gm),
      ...text.matchAll(/\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g),
    ].map((m) => m[1]!);
    for (const spec of specs) {
      const to = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec)).replace(/\.js$/, '.ts');
      arrows.push({ from, to });
    }
  }
  return arrows;
}

export function upwardArrows(arrows: readonly Arrow[]): string[] {
  return arrows.filter((a) => layerOf(a.to) > layerOf(a.from)).map((a) => `${a.from} → ${a.to}`);
}

/** The files that import each other in a circle, one line per circle found. */
export function circles(arrows: readonly Arrow[]): string[] {
  const next = new Map<string, string[]>();
  for (const a of arrows) next.set(a.from, [...(next.get(a.from) ?? []), a.to]);
  const found: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    stack.push(f);
    for (const t of next.get(f) ?? []) {
      if (state.get(t) === 'open') found.push([...stack.slice(stack.indexOf(t)), t].join(' → '));
      else if (!state.has(t)) visit(t);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of [...next.keys()].sort()) if (!state.has(f)) visit(f);
  return found;
}

describe('the layers of src/', () => {
  const arrows = importArrows(projectRoot);

  it('reads the imports (a check that reads nothing passes everything)', () => {
    assert.ok(arrows.length > 150, `only ${arrows.length} imports read`);
    assert.ok(arrows.some((a) => a.from === 'src/app.ts' && a.to === 'src/context.ts'));
    assert.ok(arrows.some((a) => a.from === 'src/doors/rest.ts' && a.to === 'src/gateway/core.ts'));
  });

  it('places every file of src/ in a layer', () => {
    const files = [...new Set(arrows.flatMap((a) => [a.from, a.to]))];
    assert.deepEqual(files.filter((f) => layerOf(f) < 0), []);
  });

  it('has no import from a layer above', () => {
    assert.deepEqual(upwardArrows(arrows), []);
  });

  it('has no circles', () => {
    assert.deepEqual(circles(arrows), []);
  });

  it('opens no transaction in a route: the services own them', () => {
    const routes = importArrows(projectRoot)
      .map((a) => a.from)
      .filter((f, i, all) => all.indexOf(f) === i && /^src\/(admin|doors|plugins)\//.test(f));
    assert.ok(routes.length >= 15, `only ${routes.length} route files read`);
    const opening = routes.filter((f) => /\.transaction\(\)/.test(readFileSync(path.join(projectRoot, f), 'utf8')));
    assert.deepEqual(opening, []);
  });

  it('keeps AppContext to 15 members at most', () => {
    const text = readFileSync(path.join(projectRoot, 'src/context.ts'), 'utf8');
    const body = /export interface AppContext \{\n([\s\S]*?)\n\}/.exec(text)?.[1];
    assert.ok(body, 'AppContext found');
    const members = body.split('\n').filter((l) => /^  [a-zA-Z]\w*\??[:(]/.test(l));
    assert.ok(members.length >= 5, 'its members read');
    assert.ok(members.length <= 15, `${members.length} members: ${members.map((m) => m.trim()).join(' | ')}`);
  });

  it('finds an arrow up and a circle when there is one', () => {
    assert.deepEqual(upwardArrows([{ from: 'src/db/database.ts', to: 'src/gateway/core.ts' }]), ['src/db/database.ts → src/gateway/core.ts']);
    assert.deepEqual(upwardArrows([{ from: 'src/gateway/core.ts', to: 'src/db/database.ts' }]), []);
    assert.equal(layerOf('src/db/schema.ts') < layerOf('src/schemas/keys.ts'), true, 'the longest prefix decides');
    assert.deepEqual(
      circles([
        { from: 'src/a.ts', to: 'src/b.ts' },
        { from: 'src/b.ts', to: 'src/c.ts' },
        { from: 'src/c.ts', to: 'src/a.ts' },
      ]),
      ['src/a.ts → src/b.ts → src/c.ts → src/a.ts'],
    );
  });
});
