// Preloaded into the gateway by bench/admin-load.ts: how long its event loop stood still.
// On SIGUSR2 it writes the largest and the 99th-percentile delay since the last signal (ms)
// to LOOP_MONITOR_FILE and starts counting again.
import fs from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const h = monitorEventLoopDelay({ resolution: 1 });
h.enable();
process.on('SIGUSR2', () => {
  fs.writeFileSync(process.env.LOOP_MONITOR_FILE, JSON.stringify({ max: h.max / 1e6, p99: h.percentile(99) / 1e6 }));
  h.reset();
});
