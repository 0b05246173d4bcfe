import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * SQLite in WAL mode copies the write-ahead log back into the database file (a checkpoint)
 * in the connection that commits, once the log passes 1,000 pages: after a transaction that
 * wrote 100,000 keys that is ~100 ms in which the event loop, and the gateway with it, stands
 * still. Here the main connection never checkpoints; a worker thread with a connection of its
 * own does, every second, in PASSIVE mode (it waits for no reader or writer).
 */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
const run = (mode) => {
  try {
    db.pragma('wal_checkpoint(' + mode + ')');
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
  }
};
const timer = setInterval(() => run('PASSIVE'), workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'stop') {
    clearInterval(timer);
    run('PASSIVE');
    db.close();
    // Nothing keeps the thread alive once its port is closed: it exits.
    parentPort.close();
  }
});
parentPort.postMessage({ ready: true });
`;

export interface CheckpointerHandle {
  stop(): Promise<void>;
}

/**
 * Starts the checkpointing thread for `file`; resolves once it has opened the database. If the
 * thread cannot start or dies, `fallback` is called (the main connection checkpoints again).
 */
export async function startCheckpointer(file: string, fallback: (err: unknown) => void, intervalMs = 1000): Promise<CheckpointerHandle> {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER, { eval: true, workerData: { file, driver, intervalMs } });
  worker.unref();
  let stopped = false;
  await new Promise<void>((resolve, reject) => {
    worker.once('message', (m: { ready?: boolean }) => (m.ready ? resolve() : reject(new Error('checkpointer did not start'))));
    worker.once('error', reject);
  });
  worker.on('error', (err) => {
    if (!stopped) fallback(err);
  });
  worker.on('exit', (code) => {
    if (!stopped) fallback(new Error(`checkpointer thread exited (${code})`));
  });
  worker.on('message', (m: { error?: string }) => {
    if (m.error) fallback(new Error(m.error));
  });
  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      const done = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.postMessage('stop');
      const timeout = setTimeout(() => void worker.terminate(), 2000);
      await done;
      clearTimeout(timeout);
    },
  };
}
