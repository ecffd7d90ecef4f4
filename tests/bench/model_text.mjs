// Prints the model-visible text of the standard agent task (see model_text.sh).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAgentTask } from '../e2e/claude/agent-task.mjs';

const bin = process.argv[2];
const here = path.dirname(fileURLToPath(import.meta.url));
const claude = path.resolve(here, '../e2e/node_modules/.bin/claude');
const names = ['remote_bash (start in background)', 'remote_bash_output (filter loss, until epoch 3)',
  'remote_file_read (last 20 lines)', 'remote_bash_kill'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smcp-model-text-'));
const runs = {};
try {
  // terminal: the default. json: structuredContent sent to Claude Code too, which then shows the
  // model that JSON instead of the text (what every result cost before issue 9).
  for (const mode of ['terminal', 'json']) {
    const run = await runAgentTask({
      claudeBin: claude,
      serverArgv: [bin, 'serve', '--structured-content', mode === 'json' ? 'always' : 'auto'],
      scratch: path.join(tmp, mode),
    });
    if (run.texts.length !== run.steps) {
      console.error(`the ${mode} run did not finish:\n${run.claude.stdout}\n${run.claude.stderr}`);
      process.exit(1);
    }
    runs[mode] = run.texts;
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
const bytes = (t) => Buffer.byteLength(t);
console.log('Model-visible text of the standard agent task (bytes), through Claude Code ' +
  `${(await import('node:child_process')).execFileSync(claude, ['--version']).toString().trim()}:\n`);
console.log('| step | terminal text (default) | structuredContent JSON (--structured-content always) |');
console.log('|---|---|---|');
names.forEach((n, i) => console.log(`| ${n} | ${bytes(runs.terminal[i])} | ${bytes(runs.json[i])} |`));
const total = (m) => runs[m].reduce((s, t) => s + bytes(t), 0);
console.log(`| **total** | **${total('terminal')}** | **${total('json')}** |`);
console.log('\nWhat the model read (terminal):');
runs.terminal.forEach((t, i) => console.log(`--- ${names[i]}\n${t}`));
