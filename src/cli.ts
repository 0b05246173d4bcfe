#!/usr/bin/env node
/**
 * tavily-pool [serve]                 start the gateway (as npm start does)
 * tavily-pool migrate --from sqlite:<file> --to postgres://…
 *     copy everything from a SQLite file into PostgreSQL; idempotent; prints counts.
 * tavily-pool keys|tokens|status …    administer a running server through its admin API
 *     (see `tavily-pool --help`; cli/commands.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { CliError } from './cli/client.js';
import { adminCommands } from './cli/commands.js';
import { packageVersion } from './paths.js';
import { ENCRYPTION_KEY_FILE } from './secrets.js';

const USAGE = `usage:
  tavily-pool [serve]
  tavily-pool migrate --from sqlite:<file> --to postgres://user@host:5432/db`;

function fail(message: string): never {
  process.stderr.write(`tavily-pool: ${message}\n`);
  process.exit(2);
}

/** The options commander read for `migrate`. */
async function migrate(values: { from?: string; to?: string; batch?: string }): Promise<void> {
  const from = values.from ?? fail(`--from is required\n${USAGE}`);
  const to = values.to ?? fail(`--to is required\n${USAGE}`);
  if (!from.startsWith('sqlite:')) fail('--from must be sqlite:<file>');
  if (!/^postgres(ql)?:\/\//.test(to)) fail('--to must be a postgres:// URL');
  const file = path.resolve(from.slice('sqlite:'.length).replace(/^\/\//, ''));
  // Opening a missing file would create an empty database and copy nothing: say so instead.
  if (!fs.existsSync(file)) fail(`no SQLite database at ${file}`);

  const { openDatabase } = await import('./db/database.js');
  const { copyTables, advanceSequences } = await import('./db/copy.js');
  const { KeyCipher, parseEncryptionKey } = await import('./crypto.js');
  const { ENCRYPTION_CHECK, encryptionFingerprint } = await import('./db/encryption-check.js');
  const { SettingsRepository } = await import('./db/repositories/settings.js');

  const source = await openDatabase({ kind: 'sqlite', file });
  let target;
  try {
    target = await openDatabase({ kind: 'postgres', url: to });
  } catch (err) {
    await source.close();
    fail(`cannot open ${to.replace(/\/\/[^@/]*@/, '//…@')}: ${(err as Error).message}`);
  }
  try {
    // Keys travel sealed: they must land where the instances hold the ENCRYPTION_KEY that sealed them.
    const keyText = process.env.ENCRYPTION_KEY ?? readIfExists(path.join(path.dirname(file), ENCRYPTION_KEY_FILE));
    const found = keyText ? new KeyCipher(parseEncryptionKey(keyText)) : null;
    const sourceCheck = (await new SettingsRepository(source.db).get(ENCRYPTION_CHECK)) ?? (found ? encryptionFingerprint(found) : undefined);
    const targetCheck = await new SettingsRepository(target.db).get(ENCRYPTION_CHECK);
    if (sourceCheck && targetCheck && sourceCheck !== targetCheck) {
      fail('the PostgreSQL database is already used by instances with another ENCRYPTION_KEY than the one that sealed the SQLite file’s keys; nothing was copied');
    }
    process.stderr.write(`copying ${file} → PostgreSQL\n`);
    const results = await copyTables(source.db, target.db, {
      batch: values.batch ? Number(values.batch) : undefined,
      onProgress: (table, done) => process.stderr.write(`  ${table}: ${done} rows read\r`),
    });
    await advanceSequences(target.db);
    process.stderr.write('\n');
    process.stdout.write('table            read  inserted  skipped\n');
    for (const r of results) {
      process.stdout.write(`${r.table.padEnd(15)}${String(r.read).padStart(6)}${String(r.inserted).padStart(10)}${String(r.skipped).padStart(9)}\n`);
    }

    const sample = await source.db.selectFrom('tavily_keys').select('key_ciphertext').limit(1).executeTakeFirst();
    if (sample && found) {
      try {
        found.decrypt(sample.key_ciphertext);
        process.stdout.write('keys: sealed with the ENCRYPTION_KEY found beside the SQLite file (or in the environment): start every PostgreSQL instance with it.\n');
      } catch {
        process.stdout.write('warning: the keys were sealed with another ENCRYPTION_KEY than the one found; the instances need the one that sealed them.\n');
      }
    } else if (sample) {
      process.stdout.write(`note: start every PostgreSQL instance with the ENCRYPTION_KEY of the SQLite instance (its DATA_DIR/${ENCRYPTION_KEY_FILE}).\n`);
    }
  } finally {
    await Promise.allSettled([source.close(), target.close()]);
  }
}

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

const program = new Command('tavily-pool')
  .description('A pool of Tavily API keys behind one endpoint: run the server, or administer a running one')
  .version(packageVersion())
  .showHelpAfterError('(add --help for usage)')
  .exitOverride();
program.configureOutput({ writeErr: (text) => process.stderr.write(text), writeOut: (text) => process.stdout.write(text) });
program
  .command('serve')
  .description('start the gateway (as npm start does), configured from the environment')
  .action(async () => {
    await import('./server.js');
  });
program
  .command('migrate')
  .description('copy keys, tokens, the request log and alerts from a SQLite file into PostgreSQL (idempotent)')
  .option('--from <sqlite:file>', 'the SQLite database, as sqlite:<file>')
  .option('--to <postgres://…>', 'the PostgreSQL database')
  .option('--batch <rows>', 'rows per statement and transaction')
  .action(async (o: { from?: string; to?: string; batch?: string }) => {
    await migrate(o).catch((err: unknown) => fail(`migration failed: ${(err as Error).message}`));
  });
adminCommands(program, { out: process.stdout, err: process.stderr, stdin: process.stdin, env: process.env });

try {
  // No command at all starts the server, as `npm start` does.
  await program.parseAsync(process.argv.length <= 2 ? [...process.argv, 'serve'] : process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and --version exit 0; any other usage error 2 (commander printed it).
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  if (err instanceof CliError) {
    process.stderr.write(`tavily-pool: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`tavily-pool: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
