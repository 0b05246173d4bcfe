import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project's root: the nearest folder above this module with a package.json (src/ under tsx, dist/src/ when built). */
export function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the project root (no package.json above the server)');
    dir = up;
  }
  return dir;
}

/** The package's version (package.json). */
export function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** Where `npm run build:web` puts the dashboard. */
export function webDist(): string {
  return path.join(projectRoot(), 'web', 'dist');
}
