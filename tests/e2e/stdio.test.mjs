// End-to-end over stdio: the official MCP TypeScript SDK client spawns `sandbox-mcp serve`,
// initializes, checks every tool's schemas, and drives the tools on the local host — including a
// server restart with a finished job still readable.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Ajv from 'ajv';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';

const BIN = process.env.SANDBOX_MCP_BIN;
assert.ok(BIN, 'SANDBOX_MCP_BIN must name the sandbox-mcp binary');

const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'smcp-e2e-stdio-'));
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'smcp-e2e-work-'));

async function connect() {
  const transport = new StdioClientTransport({
    command: BIN,
    args: ['serve', '--state-dir', stateDir, '--log-level', 'debug'],
    env: { ...process.env, SSH_HOST: '' },
    stderr: 'pipe',
  });
  const stderr = [];
  transport.stderr?.on('data', (d) => stderr.push(d.toString()));
  const client = new Client({ name: 'sandbox-mcp-e2e', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport, stderr };
}

let conn;
before(async () => {
  conn = await connect();
});
after(async () => {
  await conn?.client.close();
  fs.rmSync(stateDir, { recursive: true, force: true });
  fs.rmSync(workDir, { recursive: true, force: true });
});

const EXPECTED_TOOLS = [
  'remote_bash', 'remote_bash_output', 'remote_bash_kill', 'remote_bash_list', 'remote_file_read',
  'sandbox_new', 'sandbox_ls', 'sandbox_rm', 'sandbox_attach', 'sandbox_sync',
];

test('initialize negotiates the latest version and gives instructions', () => {
  const version = conn.client.getServerVersion();
  assert.equal(version.name, 'sandbox-mcp');
  assert.match(version.version, /^\d+\.\d+\.\d+/);
  const caps = conn.client.getServerCapabilities();
  assert.ok(caps.tools, 'tools capability');
  assert.ok(caps.logging, 'logging capability');
  const instructions = conn.client.getInstructions();
  assert.match(instructions, /run_in_background/);
  assert.match(instructions, /wait_ms/);
});

test('tools/list returns every product tool with valid schemas and annotations', async () => {
  const { tools } = await conn.client.listTools();
  const names = tools.map((t) => t.name);
  for (const name of EXPECTED_TOOLS) assert.ok(names.includes(name), `missing tool ${name}`);
  const ajv = new Ajv({ strict: false });
  for (const tool of tools) {
    assert.equal(tool.inputSchema.type, 'object', `${tool.name} inputSchema`);
    assert.ok(tool.outputSchema, `${tool.name} has an outputSchema`);
    assert.equal(tool.outputSchema.type, 'object');
    assert.doesNotThrow(() => ajv.compile(tool.inputSchema), `${tool.name} inputSchema compiles`);
    assert.doesNotThrow(() => ajv.compile(tool.outputSchema), `${tool.name} outputSchema compiles`);
    assert.ok(tool.description.length > 40, `${tool.name} has a real description`);
    assert.ok(tool.title, `${tool.name} has a title`);
    for (const hint of ['readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint']) {
      assert.equal(typeof tool.annotations[hint], 'boolean', `${tool.name}.${hint}`);
    }
  }
  const bash = tools.find((t) => t.name === 'remote_bash');
  for (const arg of ['command', 'description', 'timeout', 'run_in_background', 'host', 'sandbox', 'cwd', 'env', 'profile']) {
    assert.ok(bash.inputSchema.properties[arg], `remote_bash accepts ${arg}`);
  }
  const output = tools.find((t) => t.name === 'remote_bash_output');
  for (const arg of ['bash_id', 'filter', 'wait_ms', 'until']) {
    assert.ok(output.inputSchema.properties[arg], `remote_bash_output accepts ${arg}`);
  }
  for (const field of ['output', 'status', 'exit_code', 'skipped_lines', 'dropped_bytes']) {
    assert.ok(output.outputSchema.properties[field], `remote_bash_output returns ${field}`);
  }
});

test('remote_bash runs on the local host and returns structured results', async () => {
  // The SDK validates structuredContent against the tool's outputSchema on every call.
  const r = await conn.client.callTool({
    name: 'remote_bash',
    arguments: { command: 'echo hello; echo oops >&2; exit 2', description: 'e2e smoke' },
  });
  assert.equal(r.isError, undefined);
  assert.equal(r.structuredContent.exit_code, 2);
  assert.equal(r.structuredContent.stdout, 'hello\n');
  assert.equal(r.structuredContent.stderr, 'oops\n');
  assert.equal(r.structuredContent.host, 'local');
  assert.equal(r.structuredContent.status, 'exited');
  // The text block is written for the model: the output, then one status line.
  assert.match(r.content[0].text, /^hello\n\[stderr\]\noops\n\[exit 2 · \d+ ms\]\n$/);
});

test('remote_bash honours cwd and env', async () => {
  const r = await conn.client.callTool({
    name: 'remote_bash',
    arguments: { command: 'pwd; printf %s "$X"', cwd: workDir, env: { X: "it's $fine" } },
  });
  assert.equal(r.structuredContent.stdout, `${workDir}\nit's $fine`);
});

test('a foreground timeout ends the whole process tree', async () => {
  const r = await conn.client.callTool({
    name: 'remote_bash',
    arguments: { command: "sh -c 'sleep 1000.777 & sleep 1000.777'", timeout: 300 },
  });
  assert.equal(r.structuredContent.timed_out, true);
  assert.ok(r.structuredContent.signal, 'ended by a signal');
  const check = await conn.client.callTool({
    name: 'remote_bash',
    arguments: { command: "pgrep -f '^sleep 1000.777' | wc -l" },
  });
  assert.equal(check.structuredContent.stdout.trim(), '0');
});

test('progress notifications carry output lines of a running command', async () => {
  const seen = [];
  const r = await conn.client.callTool(
    { name: 'remote_bash', arguments: { command: 'for i in 1 2 3 4 5 6 7; do echo "step $i"; sleep 0.3; done' } },
    undefined,
    { onprogress: (p) => seen.push(p) },
  );
  assert.equal(r.structuredContent.exit_code, 0);
  assert.ok(seen.length >= 2, `expected progress notifications, got ${seen.length}`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].progress > seen[i - 1].progress, 'progress increases');
  assert.ok(seen.some((p) => /^step \d$/.test(p.message)), 'a progress message carries an output line');
});

test('background job: wait for a line, filter, kill', async () => {
  const start = await conn.client.callTool({
    name: 'remote_bash',
    arguments: { command: 'for i in $(seq 1 100); do echo "epoch $i loss 0.$i"; echo noise; sleep 0.05; done', run_in_background: true },
  });
  const id = start.structuredContent.bash_id;
  assert.match(id, /^bash_[0-9a-f]{12}$/);
  assert.equal(start.structuredContent.status, 'running');
  const waited = await conn.client.callTool({
    name: 'remote_bash_output',
    arguments: { bash_id: id, filter: 'epoch', until: 'epoch 5 ', wait_ms: 20000 },
  });
  assert.equal(waited.structuredContent.status, 'running');
  assert.match(waited.structuredContent.output, /epoch 5 loss/);
  assert.doesNotMatch(waited.structuredContent.output, /noise/);
  assert.ok(waited.structuredContent.skipped_lines >= 4);
  const killed = await conn.client.callTool({ name: 'remote_bash_kill', arguments: { bash_id: id } });
  assert.equal(killed.structuredContent.status, 'killed');
  assert.equal(killed.structuredContent.verified, true);
  const list = await conn.client.callTool({ name: 'remote_bash_list', arguments: {} });
  const mine = list.structuredContent.jobs.find((j) => j.bash_id === id);
  assert.equal(mine.status, 'killed');
});

test('remote_bash_kill with remove deletes the job and its files', async () => {
  const start = await conn.client.callTool({
    name: 'remote_bash', arguments: { command: 'echo bye', run_in_background: true },
  });
  const id = start.structuredContent.bash_id;
  // Wait for the job's end (a wait returns at the first new output, which may come first).
  let done;
  for (let i = 0; i < 50; i++) {
    done = await conn.client.callTool({ name: 'remote_bash_output', arguments: { bash_id: id, wait_ms: 5000 } });
    if (done.structuredContent.status !== 'running') break;
  }
  assert.equal(done.structuredContent.status, 'exited');
  const jobDir = path.join(stateDir, 'jobs', id);
  assert.ok(fs.existsSync(jobDir), 'the job directory exists before removal');
  const r = await conn.client.callTool({ name: 'remote_bash_kill', arguments: { bash_id: id, remove: true } });
  assert.equal(r.structuredContent.removed, true);
  assert.equal(r.structuredContent.signalled, false);
  assert.ok(!fs.existsSync(jobDir), 'the job directory is gone');
  const gone = await conn.client.callTool({ name: 'remote_bash_output', arguments: { bash_id: id } });
  assert.equal(gone.isError, true);
});

test('job outputs are resources: listed, read without moving the cursor, and updates are notified', async () => {
  const start = await conn.client.callTool({
    name: 'remote_bash', arguments: { command: 'echo one; sleep 1; echo two', run_in_background: true },
  });
  const id = start.structuredContent.bash_id;
  const uri = `job://${id}/output`;
  const { resources } = await conn.client.listResources();
  assert.ok(resources.some((r) => r.uri === uri), 'the new job is listed');
  const updates = [];
  const { ResourceUpdatedNotificationSchema } = await import('@modelcontextprotocol/sdk/types.js');
  conn.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => updates.push(n.params.uri));
  await conn.client.subscribeResource({ uri });
  for (let i = 0; i < 100 && !updates.includes(uri); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(updates.includes(uri), 'a notifications/resources/updated arrived for the job');
  let text = '';
  for (let i = 0; i < 50 && !text.includes('two'); i++) {
    const read = await conn.client.readResource({ uri });
    text = read.contents[0].text;
    if (!text.includes('two')) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(text, 'one\ntwo\n');
  const out = await conn.client.callTool({ name: 'remote_bash_output', arguments: { bash_id: id } });
  assert.equal(out.structuredContent.output, 'one\ntwo\n', 'reading the resource did not consume the output');
  await assert.rejects(conn.client.readResource({ uri: 'job://bash_nope/output' }), (e) => e.code === -32002);
});

test('remote_file_read returns numbered windows', async () => {
  const file = path.join(workDir, 'log.txt');
  fs.writeFileSync(file, Array.from({ length: 50 }, (_, i) => `line ${i + 1}`).join('\n') + '\n');
  const r = await conn.client.callTool({ name: 'remote_file_read', arguments: { file_path: file, offset: -2 } });
  assert.equal(r.structuredContent.content, '    49\tline 49\n    50\tline 50\n');
  assert.equal(r.structuredContent.start_line, 49);
  assert.equal(r.structuredContent.lines, 2);
  assert.equal(r.structuredContent.truncated, false);
  const head = await conn.client.callTool({ name: 'remote_file_read', arguments: { file_path: file, limit: 1 } });
  assert.equal(head.structuredContent.content, '     1\tline 1\n');
  assert.equal(head.structuredContent.truncated, true);
  // The largest exact integers are taken as they are; beyond 2^53 - 1 a number would be rounded, so
  // it is refused (never silently changed).
  const far = await conn.client.callTool({ name: 'remote_file_read', arguments: { file_path: file, offset: Number.MAX_SAFE_INTEGER } });
  assert.equal(far.structuredContent.lines, 0);
  const all = await conn.client.callTool({ name: 'remote_file_read', arguments: { file_path: file, offset: -Number.MAX_SAFE_INTEGER, limit: 1 } });
  assert.equal(all.structuredContent.content, '     1\tline 1\n');
  await assert.rejects(
    conn.client.callTool({ name: 'remote_file_read', arguments: { file_path: file, offset: 1e300 } }),
    (e) => e.code === -32602 && /'offset' must be an integer between/.test(e.message),
  );
});

test('bad input gets specific errors and the server keeps serving', async () => {
  await assert.rejects(
    conn.client.callTool({ name: 'remote_bash', arguments: { command: 42 } }),
    (e) => e instanceof McpError && e.code === -32602 && /'command' must be string/.test(e.message),
  );
  await assert.rejects(
    conn.client.callTool({ name: 'remote_bash', arguments: { command: 'true', colour: 'red' } }),
    (e) => e.code === -32602 && /unknown field 'colour'/.test(e.message),
  );
  await assert.rejects(
    conn.client.callTool({ name: 'no_such_tool', arguments: {} }),
    (e) => e.code === -32602 && /Unknown tool/.test(e.message),
  );
  await assert.rejects(
    conn.client.callTool({ name: 'remote_bash_output', arguments: { bash_id: 'bash_x', filter: '(' } }),
    (e) => e.code === -32602 && /filter/.test(e.message),
  );
  const unknownJob = await conn.client.callTool({ name: 'remote_bash_output', arguments: { bash_id: 'bash_000000000000' } });
  assert.equal(unknownJob.isError, true);
  assert.match(unknownJob.content[0].text, /unknown bash_id.*remote_bash_list/);
  const missing = await conn.client.callTool({ name: 'remote_file_read', arguments: { file_path: '/no/such/file' } });
  assert.equal(missing.isError, true);
  assert.match(missing.content[0].text, /no such file/);
  const noHost = await conn.client.callTool({ name: 'remote_bash', arguments: { command: 'true', host: 'nowhere-host' } });
  assert.equal(noHost.isError, true);
  assert.match(noHost.content[0].text, /nowhere-host/);
  const sandbox = await conn.client.callTool({ name: 'sandbox_rm', arguments: { name: 'no-such-sandbox' } });
  assert.equal(sandbox.isError, true);
  assert.match(sandbox.content[0].text, /no sandbox named 'no-such-sandbox'/);
  const ok = await conn.client.callTool({ name: 'remote_bash', arguments: { command: 'echo still-here' } });
  assert.equal(ok.structuredContent.stdout, 'still-here\n');
});

test('a job that finished while the server was down is read after a restart', async () => {
  const start = await conn.client.callTool({
    name: 'remote_bash',
    arguments: { command: 'echo first; sleep 0.3; echo last; exit 4', run_in_background: true },
  });
  const id = start.structuredContent.bash_id;
  await conn.client.close();  // the server exits; the job keeps running
  await new Promise((r) => setTimeout(r, 2500));
  conn = await connect();
  const r = await conn.client.callTool({ name: 'remote_bash_output', arguments: { bash_id: id } });
  assert.equal(r.structuredContent.status, 'exited', 'the job ended while the server was down');
  assert.equal(r.structuredContent.exit_code, 4);
  assert.equal(r.structuredContent.output, 'first\nlast\n');
});

test('nothing but protocol reaches stdout; logs go to stderr', async () => {
  // The SDK would have failed to parse any non-JSON line on stdout; the debug logs are on stderr.
  await conn.client.ping();
  assert.match(conn.stderr.join(''), /initialize: client sandbox-mcp-e2e/);
});
