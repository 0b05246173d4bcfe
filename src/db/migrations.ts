import { type CreateTableBuilder, type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import type { DialectKind } from './database.js';

function migrations(dialect: DialectKind): Record<string, Migration> {
  return {
    '0001_tavily_keys': {
      async up(db: Kysely<any>) {
        await db.schema
          .createTable('tavily_keys')
          .addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) =>
            dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
          )
          .addColumn('label', 'text')
          .addColumn('key_ciphertext', 'text', (c) => c.notNull())
          .addColumn('key_hash', 'text', (c) => c.notNull().unique())
          .addColumn('key_masked', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) =>
            c.notNull().defaultTo('active').check(sql`status in ('active', 'invalid', 'exhausted')`),
          )
          .addColumn('disabled_at', 'text')
          .addColumn('key_usage', 'double precision')
          .addColumn('key_limit', 'double precision')
          .addColumn('plan', 'text')
          .addColumn('plan_usage', 'double precision')
          .addColumn('plan_limit', 'double precision')
          .addColumn('paygo_usage', 'double precision')
          .addColumn('paygo_limit', 'double precision')
          .addColumn('endpoint_usage', 'text')
          .addColumn('remaining_quota', 'double precision')
          .addColumn('last_refreshed_at', 'text')
          .addColumn('last_error', 'text')
          .addColumn('last_used_at', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();
        // No secondary indexes: admin lists sort on expressions an index would not serve, and at
        // 100,000 keys a scan costs milliseconds, while every index slows the refresh's batched write.
      },
      async down(db: Kysely<any>) {
        await db.schema.dropTable('tavily_keys').execute();
      },
    },
    '0002_gateway': {
      async up(db: Kysely<any>) {
        const id = (big: boolean) => (dialect === 'postgres' ? (big ? 'bigserial' : 'serial') : 'integer');
        await db.schema
          .createTable('client_tokens')
          .addColumn('id', id(false), (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('token_hash', 'text', (c) => c.notNull().unique())
          .addColumn('token_prefix', 'text', (c) => c.notNull())
          .addColumn('monthly_budget', 'double precision')
          .addColumn('rpm_limit', 'integer')
          .addColumn('spent_month', 'text', (c) => c.notNull())
          .addColumn('month_spent', 'double precision', (c) => c.notNull().defaultTo(0))
          .addColumn('revoked_at', 'text')
          .addColumn('last_used_at', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('request_logs')
          .addColumn('id', id(true), (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
          .addColumn('ts', 'text', (c) => c.notNull())
          .addColumn('token_id', 'integer')
          .addColumn('key_id', 'integer')
          .addColumn('endpoint', 'text', (c) => c.notNull())
          .addColumn('status', 'integer', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull())
          .addColumn('latency_ms', 'double precision')
          .addColumn('credits', 'double precision', (c) => c.notNull().defaultTo(0))
          .addColumn('request_id', 'text')
          .addColumn('error', 'text')
          .execute();
        // Time filters, retention pruning and the hourly/daily stats all range over ts.
        await db.schema.createIndex('request_logs_ts_idx').on('request_logs').column('ts').execute();
        await db.schema
          .createTable('research_tasks')
          .addColumn('request_id', 'text', (c) => c.primaryKey())
          .addColumn('key_id', 'integer', (c) => c.notNull())
          .addColumn('token_id', 'integer')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          // Research is billed when it completes: charged once, on the first poll that sees it done.
          .addColumn('charged_at', 'text')
          .execute();
      },
      async down(db: Kysely<any>) {
        await db.schema.dropTable('research_tasks').execute();
        await db.schema.dropTable('request_logs').execute();
        await db.schema.dropTable('client_tokens').execute();
      },
    },
    '0003_cooldown': {
      async up(db: Kysely<any>) {
        // A key resting after a 429, kept in the database so that every instance (and a
        // restarted one) skips it until then.
        await db.schema.alterTable('tavily_keys').addColumn('cooldown_until', 'text').execute();
      },
      async down(db: Kysely<any>) {
        await db.schema.alterTable('tavily_keys').dropColumn('cooldown_until').execute();
      },
    },
    '0004_settings': {
      async up(db: Kysely<any>) {
        // Facts about the deployment every instance checks at start (the ENCRYPTION_KEY's fingerprint).
        await db.schema
          .createTable('settings')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .execute();
      },
      async down(db: Kysely<any>) {
        await db.schema.dropTable('settings').execute();
      },
    },
    '0007_log_via': {
      async up(db: Kysely<any>) {
        // Which door a request came through: the REST routes or the MCP endpoint.
        await db.schema.alterTable('request_logs').addColumn('via', 'text', (c) => c.notNull().defaultTo('rest')).execute();
      },
      async down(db: Kysely<any>) {
        await db.schema.alterTable('request_logs').dropColumn('via').execute();
      },
    },
    '0006_cooldown_reason': {
      async up(db: Kysely<any>) {
        // A key rests after a 429 or after failures in a row: the key object says which.
        await db.schema.alterTable('tavily_keys').addColumn('cooldown_reason', 'text').execute();
      },
      async down(db: Kysely<any>) {
        await db.schema.alterTable('tavily_keys').dropColumn('cooldown_reason').execute();
      },
    },
    '0005_log_requests': {
      async up(db: Kysely<any>) {
        // Refusals (a client over its budget or RPM) are logged as one row per token, endpoint
        // and status per window: the row says how many requests it stands for.
        await db.schema.alterTable('request_logs').addColumn('requests', 'integer', (c) => c.notNull().defaultTo(1)).execute();
      },
      async down(db: Kysely<any>) {
        await db.schema.alterTable('request_logs').dropColumn('requests').execute();
      },
    },
    '0008_accounts': {
      async up(db: Kysely<any>) {
        await db.schema
          .createTable('tavily_accounts')
          .addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) =>
            dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
          )
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('plan', 'text')
          .addColumn('plan_usage', 'double precision')
          .addColumn('plan_limit', 'double precision')
          .addColumn('paygo_usage', 'double precision')
          .addColumn('paygo_limit', 'double precision')
          .addColumn('remaining', 'double precision')
          .addColumn('usage_read_at', 'text')
          .addColumn('last_refreshed_at', 'text')
          .addColumn('cycle_started_at', 'text')
          .addColumn('drift_tavily', 'double precision')
          .addColumn('drift_pool', 'double precision')
          .addColumn('drift_since', 'text')
          .addColumn('drift_at', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();
        // Deleting an account leaves its keys, each its own account again.
        await db.schema
          .alterTable('tavily_keys')
          .addColumn('account_id', 'integer', (c) => c.references('tavily_accounts.id').onDelete('set null'))
          .execute();
        for (const [col, type] of [
          ['usage_read_at', 'text'],
          ['cycle_started_at', 'text'],
          ['drift_tavily', 'double precision'],
          ['drift_pool', 'double precision'],
          ['drift_since', 'text'],
          ['drift_at', 'text'],
        ] as const) {
          await db.schema.alterTable('tavily_keys').addColumn(col, type).execute();
        }
        // What the pool spent through a key between two /usage checks: a range per key.
        await db.schema.createIndex('request_logs_key_ts_idx').on('request_logs').columns(['key_id', 'ts']).execute();
      },
      async down(db: Kysely<any>) {
        await db.schema.dropIndex('request_logs_key_ts_idx').execute();
        for (const col of ['drift_at', 'drift_since', 'drift_pool', 'drift_tavily', 'cycle_started_at', 'usage_read_at', 'account_id']) {
          await db.schema.alterTable('tavily_keys').dropColumn(col).execute();
        }
        await db.schema.dropTable('tavily_accounts').execute();
      },
    },
    '0009_alerts': {
      async up(db: Kysely<any>) {
        const id = (t: CreateTableBuilder<string>) =>
          t.addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()));
        // Where alerts go. The target (a webhook URL, a Slack URL, a Telegram bot token) is a
        // credential: sealed like the keys, shown masked.
        await id(db.schema.createTable('alert_sinks'))
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('webhook', 'slack', 'telegram')`))
          .addColumn('target_ciphertext', 'text', (c) => c.notNull())
          .addColumn('target_masked', 'text', (c) => c.notNull())
          .addColumn('secret_ciphertext', 'text')
          .addColumn('chat_id', 'text')
          .addColumn('events', 'text')
          .addColumn('disabled_at', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();
        // The outbox: written in the transaction of the change that caused the event.
        await id(db.schema.createTable('alert_events'))
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('summary', 'text', (c) => c.notNull())
          .addColumn('data', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('alert_events_created_idx').on('alert_events').column('created_at').execute();
        await id(db.schema.createTable('alert_deliveries'))
          .addColumn('event_id', 'integer', (c) => c.notNull().references('alert_events.id').onDelete('cascade'))
          .addColumn('sink_id', 'integer', (c) => c.notNull().references('alert_sinks.id').onDelete('cascade'))
          .addColumn('state', 'text', (c) => c.notNull().defaultTo('pending').check(sql`state in ('pending', 'delivered', 'failed')`))
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_at', 'text', (c) => c.notNull())
          .addColumn('last_status', 'integer')
          .addColumn('last_error', 'text')
          .addColumn('delivered_at', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('alert_deliveries_due_idx').on('alert_deliveries').columns(['state', 'next_at']).execute();
        await db.schema.createIndex('alert_deliveries_event_idx').on('alert_deliveries').column('event_id').execute();
        // Conditions that hold now (a row per condition): an event fires when its row is
        // inserted, and not again until the row is deleted (the condition cleared).
        await db.schema
          .createTable('alert_active')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('since', 'text', (c) => c.notNull())
          .execute();
      },
      async down(db: Kysely<any>) {
        for (const t of ['alert_active', 'alert_deliveries', 'alert_events', 'alert_sinks']) await db.schema.dropTable(t).execute();
      },
    },
    '0010_audit': {
      async up(db: Kysely<any>) {
        // Who changed what: written in the transaction of the change. Never a key or a token.
        await db.schema
          .createTable('audit_log')
          .addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
          .addColumn('at', 'text', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('targets', 'text')
          .addColumn('outcome', 'text', (c) => c.notNull())
          .addColumn('remote_addr', 'text')
          .addColumn('user_agent', 'text')
          .execute();
        await db.schema.createIndex('audit_log_at_idx').on('audit_log').column('at').execute();
      },
      async down(db: Kysely<any>) {
        await db.schema.dropTable('audit_log').execute();
      },
    },
    '0011_token_scopes': {
      async up(db: Kysely<any>) {
        // What a client token may do: endpoints, networks (JSON arrays), an expiry, caps (JSON).
        for (const col of ['endpoints', 'networks', 'expires_at', 'caps']) {
          await db.schema.alterTable('client_tokens').addColumn(col, 'text').execute();
        }
      },
      async down(db: Kysely<any>) {
        for (const col of ['caps', 'expires_at', 'networks', 'endpoints']) await db.schema.alterTable('client_tokens').dropColumn(col).execute();
      },
    },
    '0012_checks_and_failovers': {
      async up(db: Kysely<any>) {
        // The time of a key's last check whatever it answered (a 401 or 429 is a check too),
        // and the keys a request tried before the one that answered it.
        await db.schema.alterTable('tavily_keys').addColumn('last_checked_at', 'text').execute();
        await sql`update tavily_keys set last_checked_at = last_refreshed_at`.execute(db);
        await db.schema.alterTable('request_logs').addColumn('failovers', 'text').execute();
      },
      async down(db: Kysely<any>) {
        await db.schema.alterTable('request_logs').dropColumn('failovers').execute();
        await db.schema.alterTable('tavily_keys').dropColumn('last_checked_at').execute();
      },
    },
  };
}

class CodeMigrationProvider implements MigrationProvider {
  constructor(private readonly dialect: DialectKind) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations(this.dialect);
  }
}

/** Applies every pending migration; Kysely's migration lock makes concurrent starts safe. */
export async function migrateToLatest(db: Kysely<any>, dialect: DialectKind): Promise<string[]> {
  // Kysely looks for its migration tables in every schema unless told which: in a database
  // where another schema already has them, a new schema would never be migrated.
  let migrationTableSchema: string | undefined;
  if (dialect === 'postgres') {
    const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
    migrationTableSchema = rows[0]?.schema ?? undefined;
    if (!migrationTableSchema) throw new Error('the search_path names no schema that exists: create it, or fix search_path');
  }
  const migrator = new Migrator({ db, provider: new CodeMigrationProvider(dialect), migrationTableSchema });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    throw new Error(`database migration ${failed ?? ''} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
