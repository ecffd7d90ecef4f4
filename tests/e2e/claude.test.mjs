// End-to-end with Claude Code's own CLI (from npm, no account): the README's exact `claude mcp add`
// lines, `claude mcp list` health checks over stdio and HTTP, the repository's project config
// (.mcp.json) from a subfolder, every tool listed, and the standard agent task through a stub of the
// Anthropic API that records what the model is shown of each tool result.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAgentTask, SERVER_NAME } from './claude/agent-task.mjs';
import { startHttpServer as startHttpServer_ } from './lib/http-server.mjs';
import { startStub } from './claude/stub-api.mjs';

const BIN = process.env.SANDBOX_MCP_BIN;
assert.ok(BIN, 'SANDBOX_MCP_BIN must name the sandbox-mcp binary');
const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const CLAUDE = path.join(HERE, 'node_modules/.bin/claude');
// scripts/mcp-server.sh finds the binary here (the build this test was given).
const BUILD_DIR = path.resolve(path.dirname(BIN), '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smcp-e2e-claude-'));
const children = [];

after(async () => {
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.on('exit', r)) : null)));
  fs.rmSync(tmp, { recursive: true, force: true });
});

// A scratch HOME per scenario, so nothing touches the real ~/.claude.json.
function scratchHome(name, settings = null) {
  const home = path.join(tmp, name);
  fs.mkdirSync(path.join(home, '.claude'), { recursive: true });
  if (settings) fs.writeFileSync(path.join(home, '.claude/settings.json'), JSON.stringify(settings));
  return home;
}

function claudeEnv(home, extra = {}) {
  return {
    ...process.env,
    HOME: home,
    PATH: `${path.dirname(CLAUDE)}:${process.env.PATH}`,
    SMCP_BUILD_DIR: BUILD_DIR,
    SSH_HOST: '',
    SANDBOX_MCP_STATE_DIR: path.join(home, 'state'),
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    MCP_TIMEOUT: '30000',
    ...extra,
  };
}

function sh(command, { cwd = ROOT, env }) {
  const r = spawnSync('bash', ['-c', command], { cwd, env, encoding: 'utf8', timeout: 120000, input: '' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

// The same, without blocking the event loop (needed while an in-process stub must answer).
function shAsync(command, { cwd = ROOT, env }) {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

// The `claude mcp add` lines of the README's "Add it to Claude Code" section, verbatim.
function readmeAddLines() {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Add it to Claude Code'));
  assert.ok(section, 'README has an "Add it to Claude Code" section');
  return section.split('\n').filter((l) => /^claude mcp add /.test(l.trim())).map((l) => l.trim());
}

async function startHttpServer(port, extra = []) {
  const server = await startHttpServer_(BIN, { port, stateDir: path.join(tmp, `http-${port}`), args: extra });
  children.push(server.child);
  return server;
}

test('README: its claude mcp add lines work as written; claude mcp list says Connected (stdio and HTTP, sessions never closed)', async () => {
  const lines = readmeAddLines();
  const stdioLines = lines.filter((l) => !l.includes('--transport http'));
  const httpLines = lines.filter((l) => l.includes('--transport http'));
  assert.ok(stdioLines.length >= 1 && httpLines.length >= 1, `README add lines: ${lines.join(' | ')}`);
  // The README's HTTP lines name port 8765; the test's server runs on a free port in its place.
  // Claude Code never DELETEs its sessions: with room for 2, the 3rd and later `claude mcp list`
  // must still connect (the least recently used idle session is evicted, not the newcomer refused).
  const probe = await startHttpServer(0, ['--max-sessions', '2']);
  const port = new URL(probe.url).port;
  for (const [i, line] of lines.entries()) {
    const home = scratchHome(`readme-${i}`);
    const env = claudeEnv(home);
    // A line that adds an SSH default host (SSH_HOST=gpu1) is checked for being accepted and listed;
    // gpu1 does not exist here, so only the local ones must connect.
    const command = line
      .replace('http://127.0.0.1:8765/mcp', `http://127.0.0.1:${port}/mcp`)
      .replaceAll('"$PWD/build/', `"${BUILD_DIR}/`);
    const add = sh(command, { env });
    assert.equal(add.code, 0, `${command}\n${add.out}`);
    const rounds = line.includes('--transport http') ? 4 : 1;
    let list;
    for (let round = 0; round < rounds; round++) {
      list = sh('claude mcp list', { env });
      assert.equal(list.code, 0, list.out);
      if (round < rounds - 1) assert.match(list.out, /✔ Connected/, `round ${round}:\n${list.out}`);
    }
    const name = /claude mcp add (?:--\S+ \S+ )*(\S+)/.exec(command.replace(/-e \S+ /g, ''))[1];
    const row = list.out.split('\n').find((l) => l.startsWith(`${name}:`));
    assert.ok(row, `claude mcp list shows ${name}:\n${list.out}`);
    if (/SSH_HOST=gpu1/.test(line)) continue;
    assert.match(row, /✔ Connected/, `${command}\n${list.out}`);
  }
  // "Add `-s user` to make it available in every project": from a folder outside any repository.
  assert.match(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8'), /Add `-s user` to make it available in every project/);
  {
    const home = scratchHome('readme-user-scope');
    const env = claudeEnv(home);
    const command = stdioLines[0].replace('claude mcp add ', 'claude mcp add -s user ').replaceAll('"$PWD/build/', `"${BUILD_DIR}/`);
    const add = sh(command, { env });
    assert.equal(add.code, 0, `${command}\n${add.out}`);
    const elsewhere = fs.mkdtempSync(path.join(tmp, 'elsewhere-'));
    const list = sh('claude mcp list', { cwd: elsewhere, env });
    assert.match(list.out, /^sandbox-mcp:.*✔ Connected/m, `${command}, then claude mcp list in ${elsewhere}:\n${list.out}`);
  }
  // (spawnSync held the event loop: let the server's stderr reach us.)
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(probe.child.exitCode, null, probe.stderr());
  assert.match(probe.stderr(), /evicted \(least recently used/, 'the full session table made room by eviction');
});

// The README's way to approve the project's servers without the interactive prompt: the setting
// and the file it names, as written.
function readmeApproval() {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Add it to Claude Code'));
  const m = /set\s+`"(\w+)": true`\s+in\s+`([^`]+)`/.exec(section);
  assert.ok(m, 'README says which setting approves the project servers, and where');
  return { key: m[1], file: m[2] };
}

test('project config: pending until approved as the README says, then .mcp.json connects from a subfolder', () => {
  const home = scratchHome('project');
  const pending = sh('claude mcp list', { cwd: path.join(ROOT, 'docs'), env: claudeEnv(home) });
  assert.match(pending.out, new RegExp(`${SERVER_NAME}:.*Pending approval`), pending.out);
  const { key, file } = readmeApproval();
  assert.ok(file.startsWith('~/'), `the README's settings file is the user's: ${file}`);
  const target = path.join(home, file.slice(2));
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.writeFileSync(target, JSON.stringify({ [key]: true }));
  for (const dir of [ROOT, path.join(ROOT, 'docs'), path.join(ROOT, 'tests/e2e/claude')]) {
    const list = sh('claude mcp list', { cwd: dir, env: claudeEnv(home) });
    assert.equal(list.code, 0, list.out);
    const row = list.out.split('\n').find((l) => l.startsWith(`${SERVER_NAME}:`));
    assert.ok(row, `from ${dir}, claude mcp list shows ${SERVER_NAME}:\n${list.out}`);
    assert.match(row, /✔ Connected/, `from ${dir}:\n${list.out}`);
  }
});

test('Claude Code lists all ten tools with no schema warning and no stderr noise', async () => {
  const home = scratchHome('tools');
  const stub = await startStub({ steps: [], toolPrefix: `mcp__${SERVER_NAME}__` });
  try {
    const config = path.join(home, 'mcp.json');
    fs.writeFileSync(config, JSON.stringify({ mcpServers: { [SERVER_NAME]: { command: BIN, args: ['serve'] } } }));
    const r = await shAsync(
      `claude -p hi --strict-mcp-config --mcp-config ${config} --output-format stream-json --verbose --debug-file ${home}/debug.log`,
      {
        env: claudeEnv(home, {
          ANTHROPIC_BASE_URL: stub.url,
          ANTHROPIC_API_KEY: 'sk-ant-placeholder-not-a-key',
          MCP_CONNECTION_NONBLOCKING: 'false',
        }),
      },
    );
    const init = r.out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
      .find((m) => m.type === 'system' && m.subtype === 'init');
    assert.ok(init, r.out);
    const server = init.mcp_servers.find((s) => s.name === SERVER_NAME);
    assert.equal(server?.status, 'connected', JSON.stringify(init.mcp_servers));
    const ours = init.tools.filter((t) => t.startsWith(`mcp__${SERVER_NAME}__`)).map((t) => t.split('__')[2]);
    for (const tool of [
      'remote_bash', 'remote_bash_output', 'remote_bash_kill', 'remote_bash_list', 'remote_file_read',
      'remote_hosts', 'sandbox_new', 'sandbox_ls', 'sandbox_rm', 'sandbox_attach', 'sandbox_sync',
    ]) {
      assert.ok(ours.includes(tool), `Claude Code lists ${tool}: ${ours.join(', ')}`);
    }
    const debug = fs.existsSync(`${home}/debug.log`) ? fs.readFileSync(`${home}/debug.log`, 'utf8') : '';
    const ourLines = debug.split('\n').filter((l) => l.includes(SERVER_NAME));
    assert.ok(ourLines.some((l) => /Successfully connected/.test(l)), `the debug log follows the server:\n${debug}`);
    const warnings = ourLines.filter((l) => /schema|invalid|unknown token|\berror\b/i.test(l));
    assert.deepEqual(warnings, [], 'no schema or protocol warning about the server in the debug log');
    // Claude Code logs whatever a server writes to stderr as an error: by default it writes nothing.
    assert.deepEqual(ourLines.filter((l) => /Server stderr/.test(l)), [], 'nothing on stderr by default');
  } finally {
    await stub.close();
  }
});

test('the standard agent task costs under 1 KB of model-visible text, read like a terminal', async () => {
  const run = await runAgentTask({ claudeBin: CLAUDE, serverArgv: [BIN, 'serve'], scratch: path.join(tmp, 'agent') });
  assert.deepEqual(run.stub.errors, [], `${run.claude.stdout}\n${run.claude.stderr}`);
  assert.equal(run.texts.length, run.steps, `every step ran:\n${run.claude.stdout}\n${run.claude.stderr}`);
  const [start, wait, tail, kill] = run.texts;
  assert.match(start, /^\[running in the background · bash_[0-9a-f]{12} · read with remote_bash_output\]\n$/);
  assert.match(wait, /epoch 1 loss/);
  assert.match(wait, /epoch 3 loss/);
  assert.doesNotMatch(wait, /step \d+ lr/, 'the filter kept only loss lines');
  assert.match(wait, /\[running · \d+ lines? filtered out\]\n$/);
  assert.match(tail, /^\s+1\tstep 100 lr/m);
  assert.match(tail, /\[lines 1-\d+ of \d+\]\n$/);
  assert.match(kill, /^\[bash_[0-9a-f]{12} · killed by SIGTERM · no process left\]\n$/);
  for (const t of run.texts) assert.doesNotMatch(t, /"stderr":|"timed_out":|\{"/, 'no JSON in front of the model');
  const total = run.texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
  assert.ok(total < 1024, `model-visible text of the task: ${total} bytes\n${run.texts.join('\n---\n')}`);
});

// What Claude Code 2.1 shows the model when a result has structuredContent: that JSON, not the text
// block. The reason the server leaves structuredContent out for Claude Code (--structured-content auto).
test('with structuredContent (--structured-content always), Claude Code shows the model that JSON', async () => {
  const run = await runAgentTask({
    claudeBin: CLAUDE,
    serverArgv: [BIN, 'serve', '--structured-content', 'always'],
    scratch: path.join(tmp, 'agent-structured'),
  });
  assert.equal(run.texts.length, run.steps, `${run.claude.stdout}\n${run.claude.stderr}`);
  const start = JSON.parse(run.texts[0]);
  assert.equal(start.status, 'running');
  assert.match(start.bash_id, /^bash_[0-9a-f]{12}$/);
  assert.equal(start.stderr, '', 'every field of structuredContent reaches the model');
});
