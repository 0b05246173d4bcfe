/**
 * npm run bench:waste — credits lost to resets, requests refused and 429s, for every key
 * strategy over the same 90 days of demand, on three scenarios (bench/waste-sim.ts). The
 * gateway's own KeyPool chooses every key; the run is the same for the same seed.
 *
 * Options: --seed 1 --days 90 --strategies most-remaining,expiring-first,…
 */
import { parseArgs } from 'node:util';
import { KEY_STRATEGIES, type KeyStrategy } from '../src/config.js';
import { type SimResult, monthlyCapacity, scenarios, simulate } from './waste-sim.js';

const { values: args } = parseArgs({
  options: {
    seed: { type: 'string', default: '1' },
    days: { type: 'string', default: '90' },
    strategies: { type: 'string', default: KEY_STRATEGIES.join(',') },
  },
});
const seed = Number(args.seed);
const days = Number(args.days);
const strategies = args.strategies.split(',').map((s) => s.trim()) as KeyStrategy[];
for (const s of strategies) {
  if (!KEY_STRATEGIES.includes(s)) {
    console.error(`--strategies: "${s}" is not one of ${KEY_STRATEGIES.join(', ')}`);
    process.exit(2);
  }
}
if (!Number.isInteger(seed) || !(days >= 1 && days <= 365)) {
  console.error('--seed must be a whole number and --days 1 to 365');
  process.exit(2);
}

const fmt = (n: number) => n.toLocaleString('en');
const all: SimResult[] = [];
const list = scenarios(seed, days);
console.log(`bench:waste — seed ${seed}, ${days} days, ${list[0]!.accounts.length} accounts (${fmt(monthlyCapacity(list[0]!.accounts))} credits a month)\n`);
for (const sc of list) {
  console.log(`## ${sc.name}: ${sc.description}\n`);
  console.log('| strategy | requests | credits lapsed | of those granted | refused: no credits | refused: every key resting | 429s | runs dry after |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const strategy of strategies) {
    const t0 = performance.now();
    const r = simulate(sc, strategy, seed);
    all.push(r);
    const ms = performance.now() - t0;
    console.log(
      `| ${strategy} | ${fmt(r.requests)} | ${fmt(r.lapsed)} | ${((100 * r.lapsed) / r.granted).toFixed(1)}% | ${fmt(r.refusedNoCredits)} | ${fmt(r.refusedRate)} | ${fmt(r.rateLimited)} | ${r.dryAfterDays === null ? 'never' : `${r.dryAfterDays.toFixed(1)} days`} |`,
    );
    process.stderr.write(`  (${sc.name}, ${strategy}: ${(ms / 1000).toFixed(1)} s)\n`);
  }
  console.log('');
}
const pair = (scenario: string) => [all.find((r) => r.scenario === scenario && r.strategy === 'most-remaining'), all.find((r) => r.scenario === scenario && r.strategy === 'expiring-first')] as const;
for (const sc of list) {
  const [base, ef] = pair(sc.name);
  if (!base || !ef) continue;
  const saved = base.lapsed > 0 ? (100 * (base.lapsed - ef.lapsed)) / base.lapsed : 0;
  console.log(`${sc.name}: expiring-first lapses ${saved.toFixed(1)}% fewer credits than most-remaining (${fmt(ef.lapsed)} vs ${fmt(base.lapsed)}); refused ${fmt(ef.refusedNoCredits + ef.refusedRate)} vs ${fmt(base.refusedNoCredits + base.refusedRate)}; 429s ${fmt(ef.rateLimited)} vs ${fmt(base.rateLimited)}`);
}
