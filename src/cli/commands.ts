import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Static } from '@sinclair/typebox';
import type { InstanceListResponse } from '../schemas/logs.js';
import type { AccountListResponse, KeyObject, ListResponse, RefreshResponse, SummaryResponse } from '../schemas/keys.js';
import type { TokenCreatedResponse, TokenListResponse, TokenObject } from '../schemas/tokens.js';
import { KEY_STATUSES } from '../db/schema.js';
import { count } from '../text.js';
import { AdminClient, CliError, DEFAULT_TIMEOUT_S, DEFAULT_URL, resolveConnection } from './client.js';

/** What a command writes: results to stdout, progress and notes to stderr. */
export interface Io {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
}

interface GlobalOptions {
  url?: string;
  token?: string;
  timeout?: string;
  json?: boolean;
}

// The admin API's answers, as its schemas say.
type KeyRow = Static<typeof KeyObject>;
type KeyPage = Static<typeof ListResponse>;
type RefreshResult = Static<typeof RefreshResponse>;
type TokenRow = Static<typeof TokenObject>;

const int = (what: string, min: number) => (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < min) throw new InvalidArgumentError(`${what} must be a whole number of at least ${min}`);
  return Number(v);
};
const ids = (v: string, prev: number[] = []) => [...prev, int('an id', 1)(v)];

/** Columns padded to their widest cell: readable in a terminal, no colours. */
export function table(headers: string[], rows: Array<Array<string | number | null>>): string {
  const cells = rows.map((r) => r.map((c) => (c === null ? '–' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

const when = (iso: string | null) => (iso ? iso.replace('T', ' ').slice(0, 16) : null);

/**
 * Writes a stream to `file` as a new file only its owner can read: a temporary file made beside
 * it (O_EXCL, mode 0600), renamed over `file` once complete. An existing file keeps neither its
 * mode nor its content half-overwritten, and a symbolic link at `file` is replaced, not followed.
 */
async function writePrivately(file: string, body: NodeJS.ReadableStream): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  try {
    await pipeline(body, fs.createWriteStream(temp, { flags: 'wx', mode: 0o600 }));
    fs.renameSync(temp, file);
  } catch (err) {
    fs.rmSync(temp, { force: true });
    if (err instanceof CliError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e.syscall) throw new CliError(`cannot write ${file}: ${e.code === 'ENOENT' ? 'no such directory' : e.code === 'EACCES' ? 'permission denied' : e.message} (nothing was written)`);
    throw new CliError(`the export broke off: ${e.code ?? e.message} (nothing was written to ${file})`);
  }
}

async function readInput(file: string, io: Io): Promise<string> {
  if (file === '-') {
    const parts: Buffer[] = [];
    for await (const c of io.stdin) parts.push(Buffer.from(c as Buffer));
    return Buffer.concat(parts).toString('utf8');
  }
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`, 2);
  }
}

/** The `tavily-pool` commands that talk to a running server's admin API. */
export function adminCommands(program: Command, io: Io): void {
  const print = (text: string): void => void io.out.write(text);
  const note = (text: string): void => void io.err.write(text);
  const client = (cmd: Command) => {
    const g = cmd.optsWithGlobals<GlobalOptions>();
    const api = new AdminClient(resolveConnection(g, io.env));
    opened.push(api);
    return { api, json: g.json === true };
  };
  const opened: AdminClient[] = [];
  program.hook('postAction', async () => {
    await Promise.all(opened.splice(0).map((a) => a.close()));
  });
  const asJson = (v: unknown) => print(`${JSON.stringify(v, null, 2)}\n`);

  program
    .option('--url <url>', `the server (TAVILY_POOL_URL; default ${DEFAULT_URL})`)
    .option('--token <token>', 'the admin token (ADMIN_TOKEN; default: DATA_DIR/admin-token)')
    .option('--timeout <seconds>', `how long to wait for the server to connect and to answer (TAVILY_POOL_TIMEOUT; default ${DEFAULT_TIMEOUT_S})`)
    .option('--json', 'print the API’s JSON, for scripts');

  const keys = program.command('keys').description('Tavily keys in the pool');

  keys
    .command('add')
    .description('add keys from a file (or - for standard input): any text holding tvly-… keys, a CSV, or the import’s JSON')
    .argument('<file>', 'a file, or - for standard input')
    .option('--validate', 'check each key against /usage before adding it')
    .option('--label <label>', 'label the added keys')
    .option('--account <name>', 'put the added keys in this account (made when new)')
    .action(async (file: string, o: { validate?: boolean; label?: string; account?: string }, cmd: Command) => {
      const { api, json } = client(cmd);
      const text = await readInput(file, io);
      const q = new URLSearchParams();
      if (o.validate) q.set('validate', 'true');
      let body: { json?: unknown; text?: string };
      const trimmed = text.trimStart();
      let parsed: unknown = null;
      if (trimmed.startsWith('{')) {
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = null;
        }
      }
      if (parsed && typeof parsed === 'object') {
        body = { json: { ...(parsed as object), ...(o.label !== undefined ? { label: o.label } : {}), ...(o.account !== undefined ? { account: o.account } : {}) } };
      } else {
        if (o.label !== undefined) q.set('label', o.label);
        if (o.account !== undefined) q.set('account', o.account);
        body = { text };
      }
      const r = await api.request<{ added: number; duplicates: number; rejected: Array<{ input: string; reason: string }>; rejected_count: number; accounts: number }>('POST', `/tavily-keys${q.size ? `?${q}` : ''}`, body);
      if (json) return asJson(r);
      print(`added ${count(r.added, 'key')}; ${count(r.duplicates, 'duplicate')}; ${r.rejected_count} rejected\n`);
      for (const x of r.rejected) print(`  rejected ${x.input}: ${x.reason}\n`);
      if (r.rejected_count > r.rejected.length) print(`  … and ${r.rejected_count - r.rejected.length} more\n`);
    });

  keys
    .command('list')
    .description('list keys (newest first)')
    .addOption(new Option('--status <status>', 'only keys with this status').choices(KEY_STATUSES))
    .option('--account-id <id>', 'only keys of this account (0: keys in no account)', int('--account-id', 0))
    .option('--search <text>', 'label or the key’s last characters')
    .option('--limit <n>', 'at most this many (default 100; 0: all)', int('--limit', 0), 100)
    .action(async (o: { status?: string; accountId?: number; search?: string; limit: number }, cmd: Command) => {
      const { api, json } = client(cmd);
      const items: KeyRow[] = [];
      let cursor: string | null = null;
      let total = 0;
      do {
        const q = new URLSearchParams({ limit: String(o.limit === 0 ? 1000 : Math.min(1000, o.limit - items.length)) });
        if (o.status) q.set('status', o.status);
        if (o.accountId !== undefined) q.set('account_id', String(o.accountId));
        if (o.search) q.set('q', o.search);
        if (cursor) q.set('cursor', cursor);
        const page: KeyPage = await api.request('GET', `/tavily-keys?${q}`);
        items.push(...page.items);
        total = page.total;
        cursor = page.next_cursor;
      } while (cursor && (o.limit === 0 || items.length < o.limit));
      if (json) return asJson({ items, total });
      print(table(['ID', 'KEY', 'STATUS', 'REMAINING', 'LABEL', 'ACCOUNT', 'REFRESHED'], items.map((k) => [k.id, k.key_masked, k.status, k.remaining_quota, k.label, k.account_name ?? null, when(k.last_refreshed_at)])));
      if (items.length < total) note(`${items.length} of ${total} keys shown (--limit 0 for all)\n`);
    });

  keys
    .command('refresh')
    .description('refresh the keys’ quotas from Tavily, with a progress bar; lists the failures at the end')
    .option('--id <id>', 'only this key (repeat for more)', ids)
    .option('--stale-after <seconds>', 'only keys not refreshed for this long', int('--stale-after', 0))
    .action(async (o: { id?: number[]; staleAfter?: number }, cmd: Command) => {
      const { api, json } = client(cmd);
      // A refresh of many keys takes longer than any answer should: its answer has no deadline,
      // the progress asked for beside it does, and a server that stops answering that ends the wait.
      type Progress = { progress: { running: boolean; total: number; done: number; failed: number } };
      await api.request<Progress>('GET', '/tavily-keys/refresh-quota');
      const stop = new AbortController();
      const done = api.request<RefreshResult>(
        'POST',
        '/tavily-keys/refresh-quota',
        { json: { ...(o.id ? { ids: o.id } : {}), ...(o.staleAfter !== undefined ? { stale_after_s: o.staleAfter } : {}) } },
        { answerDeadline: 'none', signal: stop.signal },
      );
      const bar = json ? null : new cliProgress.SingleBar({ format: 'refresh [{bar}] {value}/{total} keys, {failed} failed, {duration}s', noTTYOutput: true, notTTYSchedule: 1000, stream: io.err as NodeJS.WriteStream, hideCursor: true }, cliProgress.Presets.shades_classic);
      let started = false;
      let finished = false;
      const follow = (async () => {
        while (!finished) {
          const s = await api.request<Progress>('GET', '/tavily-keys/refresh-quota').catch((err: unknown) => {
            if (!finished) stop.abort(new Error(`the server stopped answering while the refresh ran (${(err as Error).message})`));
            return null;
          });
          if (bar && s?.progress.running && s.progress.total > 0) {
            if (!started) bar.start(s.progress.total, 0, { failed: 0 });
            started = true;
            bar.setTotal(s.progress.total);
            bar.update(s.progress.done, { failed: s.progress.failed });
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
      let r: RefreshResult;
      try {
        r = await done;
      } finally {
        finished = true;
        await follow;
      }
      if (bar) {
        if (!started) bar.start(r.total, 0, { failed: 0 });
        bar.setTotal(r.total);
        bar.update(r.total, { failed: r.failed_count });
        bar.stop();
      }
      if (json) return asJson(r);
      print(`refreshed ${r.total} keys in ${(r.duration_ms / 1000).toFixed(1)} s: ${r.success_count} ok, ${r.failed_count} failed\n`);
      if (r.failures.length > 0) print(table(['ID', 'KEY', 'STATUS', 'ERROR'], r.failures.map((f) => [f.id, f.key_masked, f.status_code, f.error])));
    });

  keys
    .command('export')
    .description('print every key in full, one a line (the only command that shows keys)')
    .addOption(new Option('--status <status>', 'only keys with this status').choices(KEY_STATUSES))
    .option('-o, --output <file>', 'write to this file (mode 0600) instead of standard output')
    .action(async (o: { status?: string; output?: string }, cmd: Command) => {
      const { api } = client(cmd);
      const res = await api.raw('GET', `/tavily-keys/export${o.status ? `?status=${o.status}` : ''}`, 'text/plain');
      const body = res.body.stream;
      if (o.output) {
        await writePrivately(o.output, body);
        note(`keys written to ${o.output} (mode 0600)\n`);
      } else {
        await pipeline(body, io.out, { end: false });
      }
    });

  for (const action of ['disable', 'enable', 'delete'] as const) {
    keys
      .command(action)
      .description(`${action} keys by id`)
      .argument('<ids...>', 'key ids', (v: string, prev: number[] = []) => [...prev, int('a key id', 1)(v)])
      .action(async (list: number[], _o: unknown, cmd: Command) => {
        const { api, json } = client(cmd);
        const r = await api.request<{ affected: number; not_found: number[] }>('POST', '/tavily-keys/bulk', { json: { action, ids: list } });
        if (json) asJson(r);
        else print(`${action}d ${count(r.affected, 'key')}\n`);
        if (r.not_found.length > 0) throw new CliError(`no key with id ${r.not_found.join(', ')}: see \`tavily-pool keys list\``);
      });
  }

  const tokens = program.command('tokens').description('client tokens');

  tokens
    .command('create')
    .description('make a client token (shown once)')
    .argument('<name>')
    .option('--budget <credits>', 'monthly budget in credits', int('--budget', 0))
    .option('--rpm <n>', 'requests a minute', int('--rpm', 1))
    .option('--cache-ttl <seconds>', 'reuse an identical request’s answer this long, free (0: never; default: REST none, MCP 60 s)', int('--cache-ttl', 0))
    .action(async (name: string, o: { budget?: number; rpm?: number; cacheTtl?: number }, cmd: Command) => {
      const { api, json } = client(cmd);
      const r = await api.request<Static<typeof TokenCreatedResponse>>('POST', '/tokens', { json: { name, monthly_budget: o.budget ?? null, rpm_limit: o.rpm ?? null, ...(o.cacheTtl !== undefined ? { cache_ttl_s: o.cacheTtl } : {}) } });
      if (json) return asJson(r);
      print(`${r.token}\n`);
      note(`token ${r.item.id} “${r.item.name}” made: copy it now, it is not shown again\n`);
    });

  tokens
    .command('list')
    .description('client tokens with this month’s spend')
    .option('--revoked', 'include revoked tokens')
    .action(async (o: { revoked?: boolean }, cmd: Command) => {
      const { api, json } = client(cmd);
      const r = await api.request<Static<typeof TokenListResponse>>('GET', `/tokens${o.revoked ? '?include_revoked=true' : ''}`);
      if (json) return asJson(r);
      print(table(['ID', 'NAME', 'TOKEN', 'SPENT', 'BUDGET', 'RPM', 'CACHE', 'LAST USED', 'REVOKED'], r.items.map((t) => [t.id, t.name, t.token_prefix, t.month_spent, t.monthly_budget, t.rpm_limit, t.cache_ttl_s === null ? null : `${t.cache_ttl_s} s`, when(t.last_used_at), when(t.revoked_at)])));
    });

  tokens
    .command('revoke')
    .description('revoke a client token: refused at once')
    .argument('<id>', 'token id', int('a token id', 1))
    .action(async (id: number, _o: unknown, cmd: Command) => {
      const { api, json } = client(cmd);
      const r = await api.request<TokenRow>('DELETE', `/tokens/${id}`);
      if (json) return asJson(r);
      print(`revoked token ${r.id} “${r.name}”\n`);
    });

  program
    .command('status')
    .description('keys by status, credits left, the last refresh, and how the server is')
    .action(async (_o: unknown, cmd: Command) => {
      const { api, json } = client(cmd);
      const [summary, accounts, ready, instances] = await Promise.all([
        api.request<Static<typeof SummaryResponse>>('GET', '/summary'),
        api.request<Static<typeof AccountListResponse>>('GET', '/accounts'),
        api.send('GET', '/readyz').then(async (r) => ({ http: r.status, ...((await r.body.json()) as { status: string; error?: string; instance?: string; sync?: string }) })),
        api.request<Static<typeof InstanceListResponse>>('GET', '/instances'),
      ]);
      if (json) return asJson({ summary, accounts: accounts.items.length, ready, instances: instances.items });
      const s = summary;
      print(`server        ${api.c.url}: ${ready.status}${ready.error ? ` (${ready.error})` : ''}${ready.instance ? `, instance ${ready.instance} ${ready.sync ?? ''}` : ''}\n`);
      print(`keys          ${s.keys.total}: ${Object.entries(s.keys.by_status).map(([k, v]) => `${v} ${k}`).join(', ')}\n`);
      print(`credits left  ${s.total_remaining}${s.unknown_quota ? ` (${s.unknown_quota} keys not refreshed yet)` : ''}\n`);
      // As the dashboard and GET /accounts count them, and then how many of them can serve.
      print(`accounts      ${accounts.items.length}${accounts.items.length > 0 ? `: ${s.accounts} with usable keys` : ''}\n`);
      print(`last refresh  ${when(s.last_refreshed_at) ?? 'never'}${s.refresh.running ? ' (one is running)' : ''}\n\n`);
      print(
        table(
          ['INSTANCE', 'HOST', 'VERSION', 'STARTED', 'STATE', 'LOG', 'KEYS'],
          instances.items.map((i) => [
            `${i.id}${i.self ? ' *' : ''}`,
            i.host,
            i.version,
            when(i.started_at),
            i.lost ? `lost (last seen ${when(i.last_seen)})` : i.listening ? 'ok' : 'not hearing the others',
            i.request_log_ok ? `ok, ${i.pending_rows} pending` : 'failing',
            i.keys_available,
          ]),
        ),
      );
      if (ready.http !== 200) throw new CliError(`the server is not ready: ${ready.error ?? ready.status}`);
    });
}
