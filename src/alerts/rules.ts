import { type AlertRules, DEFAULT_RULES } from './schemas.js';
import type { Db } from '../db/database.js';

export { AlertRules, DEFAULT_RULES };

const SETTING = 'alert_rules';

/** The rules as stored (defaults for what is not). */
export async function readRules(db: Db): Promise<AlertRules> {
  const row = await db.selectFrom('settings').select('value').where('name', '=', SETTING).executeTakeFirst();
  if (!row) return { ...DEFAULT_RULES };
  try {
    return { ...DEFAULT_RULES, ...(JSON.parse(row.value) as Partial<AlertRules>) };
  } catch {
    return { ...DEFAULT_RULES };
  }
}

export async function writeRules(db: Db, rules: AlertRules): Promise<void> {
  const value = JSON.stringify(rules);
  await db
    .insertInto('settings')
    .values({ name: SETTING, value })
    .onConflict((oc) => oc.column('name').doUpdateSet({ value }))
    .execute();
}
