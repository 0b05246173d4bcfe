import type { Db } from '../db/database.js';
import { SettingsRepository } from '../db/repositories/settings.js';
import { type AlertRules, DEFAULT_RULES } from '../schemas/alerts.js';

const SETTING = 'alert_rules';

/** The rules as stored (defaults for what is not). */
export async function readRules(db: Db): Promise<AlertRules> {
  const value = await new SettingsRepository(db).get(SETTING);
  if (value === undefined) return { ...DEFAULT_RULES };
  try {
    return { ...DEFAULT_RULES, ...(JSON.parse(value) as Partial<AlertRules>) };
  } catch {
    return { ...DEFAULT_RULES };
  }
}

export async function writeRules(db: Db, rules: AlertRules): Promise<void> {
  await new SettingsRepository(db).put(SETTING, JSON.stringify(rules));
}
