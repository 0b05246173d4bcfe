import type { Db } from '../database.js';

/** Deployment-wide facts kept in the database (name → value). */
export class SettingsRepository {
  constructor(private readonly db: Db) {}

  async get(name: string, ex: Db = this.db): Promise<string | undefined> {
    const row = await ex.selectFrom('settings').select('value').where('name', '=', name).executeTakeFirst();
    return row?.value;
  }

  /** Stores the value, replacing any. */
  async put(name: string, value: string, ex: Db = this.db): Promise<void> {
    await ex.insertInto('settings').values({ name, value }).onConflict((oc) => oc.column('name').doUpdateSet({ value })).execute();
  }

  /** Stores the value unless the name is already set; returns the value that is now stored. */
  async putIfAbsent(name: string, value: string, ex: Db = this.db): Promise<string> {
    await ex.insertInto('settings').values({ name, value }).onConflict((oc) => oc.column('name').doNothing()).execute();
    return (await this.get(name, ex))!;
  }
}
