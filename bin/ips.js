#!/usr/bin/env node
// The `ips` command. Runs the compiled CLI (dist/, made by `npm run build`, which `npm ci` runs
// through `prepare`) when it is at least as new as every source file, so it starts in well under
// a second; otherwise runs the TypeScript sources through tsx, so edits never run stale code.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const compiled = path.join(root, 'dist', 'src', 'cli', 'main.js');

function newestSource(dir) {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

function compiledIsFresh() {
  try {
    return fs.statSync(compiled).mtimeMs >= newestSource(path.join(root, 'src'));
  } catch {
    return false;
  }
}

if (compiledIsFresh()) {
  await import(pathToFileURL(compiled).href);
} else {
  // In-process (no child): signals such as SIGTERM to `ips serve` reach the CLI itself.
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(path.join(root, 'src', 'cli', 'main.ts')).href);
}
