// Progress notifications never reach a client after their call's result (issue 9).
//
// Claude Code puts a progressToken on every call. The official TypeScript SDK handles a
// notification in a microtask but a response at once, so a progress line that arrives with (or
// after) its response is reported as "Received a progress notification for an unknown token" and
// Claude Code then treats the connection as broken. Many concurrent calls, most of them quick, some
// printing lines up to their last instant, over stdio and Streamable HTTP: the raw message order
// must show no progress after its response, the SDK must report no error, quick calls must get no
// progress at all, and long calls must still get progress.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHttpServer as startHttpServer_ } from './lib/http-server.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const BIN = process.env.SANDBOX_MCP_BIN;
assert.ok(BIN, 'SANDBOX_MCP_BIN must name the sandbox-mcp binary');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smcp-e2e-progress-'));
const children = [];

after(async () => {
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.on('exit', r)) : null)));
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function startHttpServer(name) {
  const server = await startHttpServer_(BIN, { stateDir: path.join(tmp, name) });
  children.push(server.child);
  return server.url;
}

// Connects and records every message in arrival order, before the SDK handles it.
async function connect(transport) {
  const client = new Client({ name: 'progress-order', version: '1.0.0' });
  const errors = [];
  client.onerror = (e) => errors.push(String(e?.message ?? e));
  await client.connect(transport);
  const order = [];
  const handle = transport.onmessage;
  transport.onmessage = (message, extra) => {
    if (message.method === 'notifications/progress') order.push({ progress: String(message.params.progressToken) });
    else if (message.id !== undefined && (message.result || message.error)) order.push({ response: String(message.id) });
    handle(message, extra);
  };
  return { client, errors, order };
}

// A quick command, or one that prints a line every 50 ms until its last instant (~1.5 s).
const QUICK = 'echo a; echo b';
const CHATTY = 'for i in $(seq 30); do echo "line $i"; sleep 0.05; done';

async function drive(conn, calls, concurrency) {
  const results = new Array(calls);
  let next = 0;
  async function worker() {
    while (next < calls) {
      const i = next++;
      const chatty = i % 16 === 0;
      const seen = [];
      const r = await conn.client.callTool(
        { name: 'remote_bash', arguments: { command: chatty ? CHATTY : QUICK } },
        undefined,
        { onprogress: (p) => seen.push(p) },
      );
      results[i] = { chatty, seen, r };
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  // Let any straggling notification arrive before looking.
  await new Promise((r) => setTimeout(r, 300));
  return results;
}

function check(conn, results) {
  const answered = new Set();
  const late = [];
  for (const m of conn.order) {
    if (m.response) answered.add(m.response);
    else if (answered.has(m.progress)) late.push(m.progress);
  }
  assert.deepEqual(late, [], 'progress notifications written after their response');
  const tokenErrors = conn.errors.filter((e) => /progress notification for an unknown token/.test(e));
  assert.deepEqual(tokenErrors, [], 'the SDK client saw progress for a finished call');
  assert.deepEqual(conn.errors, [], 'no client-side error at all');
  for (const { chatty, seen, r } of results) {
    assert.equal(r.isError, undefined, JSON.stringify(r));
    assert.equal(r.structuredContent.exit_code, 0);
    if (chatty) {
      assert.ok(seen.length >= 1, 'a command running 1.5 s reports progress');
      assert.match(r.structuredContent.stdout, /line 30\n$/);
    } else {
      // The server sends no progress in a call's first second (a loaded machine can make even
      // `echo` take that long; such calls may report progress).
      if (r.structuredContent.duration_ms < 900) assert.equal(seen.length, 0, `a quick call needs no progress: ${JSON.stringify({ seen, d: r.structuredContent.duration_ms })}`);
      assert.equal(r.structuredContent.stdout, 'a\nb\n');
    }
  }
}

test('stdio: 320 calls, 8 at a time, no progress after its result', async () => {
  const transport = new StdioClientTransport({
    command: BIN,
    args: ['serve', '--state-dir', path.join(tmp, 'stdio')],
    env: { ...process.env, SSH_HOST: '' },
    stderr: 'pipe',
  });
  const conn = await connect(transport);
  try {
    check(conn, await drive(conn, 320, 8));
  } finally {
    await conn.client.close();
  }
});

test('HTTP: 320 calls, 8 at a time, no progress after its result', async () => {
  const url = await startHttpServer('http');
  const conn = await connect(new StreamableHTTPClientTransport(new URL(url)));
  try {
    check(conn, await drive(conn, 320, 8));
  } finally {
    await conn.client.close();
  }
});
