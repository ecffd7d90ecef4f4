// End-to-end over Streamable HTTP: the official MCP TypeScript SDK client
// (StreamableHTTPClientTransport) against `sandbox-mcp serve --http 127.0.0.1:0`, and the curl
// example of docs/http.md run verbatim (only the port changed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const BIN = process.env.SANDBOX_MCP_BIN;
assert.ok(BIN, 'SANDBOX_MCP_BIN must name the sandbox-mcp binary');
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TOKEN = 'e2e-token-0123456789abcdef0123456789';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smcp-e2e-http-'));
const servers = [];

// Starts the server on a free loopback port; resolves with its URL once it logs it.
function startServer(name, extraArgs = [], env = {}) {
  const child = spawn(BIN, ['serve', '--http', '127.0.0.1:0', '--state-dir', path.join(tmp, name), ...extraArgs], {
    env: { ...process.env, SSH_HOST: '', SANDBOX_MCP_HTTP_TOKEN: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = { child, stderr: '', stdout: '' };
  servers.push(server);
  child.stdout.on('data', (d) => (server.stdout += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${server.stderr}`)), 10000);
    child.stderr.on('data', (d) => {
      server.stderr += d;
      const m = /listening on (http:\/\/\S+\/mcp)/.exec(server.stderr);
      if (m && !server.url) {
        server.url = m[1];
        clearTimeout(timer);
        resolve(server);
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${server.stderr}`)));
  });
}

async function connect(url, requestInit = undefined) {
  const transport = new StreamableHTTPClientTransport(new URL(url), requestInit ? { requestInit } : undefined);
  const client = new Client({ name: 'sandbox-mcp-e2e-http', version: '1.0.0' });
  const errors = [];
  client.onerror = (e) => errors.push(e);
  await client.connect(transport);
  return { client, transport, errors };
}

let server;
let conn;
before(async () => {
  server = await startServer('main');
  conn = await connect(server.url);
});
after(async () => {
  await conn?.client.close();
  for (const s of servers) {
    s.child.kill('SIGTERM');
  }
  await Promise.all(servers.map((s) => (s.child.exitCode === null ? new Promise((r) => s.child.on('exit', r)) : null)));
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('SDK client: initialize over HTTP gets a session and the latest protocol version', () => {
  assert.equal(conn.client.getServerVersion().name, 'sandbox-mcp');
  assert.match(conn.transport.sessionId, /^[\x21-\x7e]{32,}$/);
  assert.equal(conn.transport.protocolVersion, '2025-11-25');
  const caps = conn.client.getServerCapabilities();
  assert.ok(caps.tools && caps.logging);
});

test('SDK client: listTools, callTool remote_bash with structuredContent, ping, setLoggingLevel', async () => {
  const { tools } = await conn.client.listTools();
  assert.ok(tools.some((t) => t.name === 'remote_bash'));
  // The SDK validates structuredContent against the outputSchema.
  const r = await conn.client.callTool({ name: 'remote_bash', arguments: { command: 'echo hi' } });
  assert.equal(r.isError, undefined);
  assert.equal(r.structuredContent.stdout, 'hi\n');
  assert.equal(r.structuredContent.exit_code, 0);
  assert.equal(r.structuredContent.host, 'local');
  assert.deepEqual(await conn.client.ping(), {});
  assert.deepEqual(await conn.client.setLoggingLevel('info'), {});
});

test('SDK client: progress notifications arrive on the SSE stream before the result', async () => {
  const seen = [];
  const r = await conn.client.callTool(
    { name: 'remote_bash', arguments: { command: 'for i in 1 2 3 4 5 6 7; do echo "step $i"; sleep 0.3; done' } },
    undefined,
    { onprogress: (p) => seen.push(p) },
  );
  assert.equal(r.structuredContent.exit_code, 0);
  assert.ok(seen.length >= 2, `expected progress notifications, got ${seen.length}`);
  assert.ok(seen.some((p) => /^step \d$/.test(p.message)));
});

test('SDK client: a long call does not hold up other requests, on this or another session', async () => {
  const other = await connect(server.url);
  try {
    const started = Date.now();
    const slow = conn.client.callTool({ name: 'remote_bash', arguments: { command: 'sleep 2; echo done' } });
    for (const c of [conn.client, other.client]) {
      const t0 = Date.now();
      const { tools } = await c.listTools();
      assert.ok(tools.length > 0);
      assert.ok(Date.now() - t0 < 1000, 'tools/list answered while the long call runs');
    }
    const r = await slow;
    assert.equal(r.structuredContent.stdout, 'done\n');
    assert.ok(Date.now() - started >= 1900);
  } finally {
    await other.client.close();
  }
});

test('SDK client: unknown tools and bad arguments are JSON-RPC errors, the session goes on', async () => {
  await assert.rejects(conn.client.callTool({ name: 'no_such_tool', arguments: {} }), /Unknown tool/);
  await assert.rejects(conn.client.callTool({ name: 'remote_bash', arguments: {} }), /command/);
  const r = await conn.client.callTool({ name: 'remote_bash', arguments: { command: 'true' } });
  assert.equal(r.structuredContent.exit_code, 0);
});

test('SDK client: terminateSession ends the session on the server', async () => {
  const c = await connect(server.url);
  const id = c.transport.sessionId;
  await c.transport.terminateSession();
  const res = await fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': id },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  assert.equal(res.status, 404);
  await c.client.close();
});

test('SDK client: with a bearer token, requests need it', async () => {
  const secured = await startServer('token', [], { SANDBOX_MCP_HTTP_TOKEN: TOKEN });
  await assert.rejects(connect(secured.url), /401|Unauthorized/);
  const c = await connect(secured.url, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const r = await c.client.callTool({ name: 'remote_bash', arguments: { command: 'echo secured' } });
  assert.equal(r.structuredContent.stdout, 'secured\n');
  await c.client.close();
});

test('SDK client: the session saw no transport errors (GET stream, SSE parsing)', () => {
  assert.deepEqual(conn.errors.map((e) => String(e)), []);
});

// ------------------------------------------------------------------ curl, as documented

function curlExample() {
  const doc = fs.readFileSync(path.join(ROOT, 'docs/http.md'), 'utf8');
  const block = /<!-- curl-example:begin[^>]*-->\s*```sh\n([\s\S]*?)```\s*<!-- curl-example:end -->/.exec(doc);
  assert.ok(block, 'docs/http.md has the curl example block');
  return block[1];
}

test('curl: the documented initialize / tools/list / tools/call / DELETE lines work as printed', () => {
  let script = curlExample();
  assert.match(script, /URL=http:\/\/127\.0\.0\.1:8765\/mcp/);
  const headers = path.join(tmp, 'curl-headers');
  script = script.replace('http://127.0.0.1:8765/mcp', server.url).replaceAll('/tmp/mcp-headers', headers);
  // Mark each numbered step so that its output can be checked on its own.
  script = script.replace(/^# (\d+)\./gm, (m, n) => `echo "@@step ${n}@@"\n${m}`);
  const out = execFileSync('bash', ['-euo', 'pipefail', '-c', script], { encoding: 'utf8', timeout: 30000 });
  const steps = {};
  for (const part of out.split(/@@step (\d+)@@\n/).slice(1).reduce((acc, v, i, a) => (i % 2 ? acc : [...acc, [v, a[i + 1]]]), [])) {
    steps[part[0]] = part[1] ?? '';
  }
  const init = JSON.parse(steps['1']);
  assert.equal(init.result.protocolVersion, '2025-11-25');
  assert.equal(init.result.serverInfo.name, 'sandbox-mcp');
  assert.equal(steps['2'], '', 'the notification is answered 202 with no body');
  const list = JSON.parse(steps['3']);
  assert.ok(list.result.tools.some((t) => t.name === 'remote_bash'));
  const data = steps['4'].split('\n').filter((l) => l.startsWith('data: ') && l.length > 6).map((l) => JSON.parse(l.slice(6)));
  const result = data.find((m) => m.id === 3);
  assert.ok(result, `tools/call answer in:\n${steps['4']}`);
  assert.equal(result.result.structuredContent.stdout, 'hello from sandbox-mcp\n');
  assert.equal(steps['5'], '', 'DELETE answers 200 with no body');
  // The session is gone.
  const sid = fs.readFileSync(headers, 'utf8').match(/mcp-session-id: (\S+)/i)[1];
  const after = execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', server.url, '-H', `Mcp-Session-Id: ${sid}`,
    '-H', 'Content-Type: application/json', '-H', 'Accept: application/json, text/event-stream',
    '-d', '{"jsonrpc":"2.0","id":9,"method":"ping"}'], { encoding: 'utf8' });
  assert.equal(after, '404');
});

test('curl: rejections are clear JSON-RPC errors and the server keeps serving', () => {
  const curl = (...args) => {
    const out = execFileSync('curl', ['-s', '-w', '\n%{http_code}', server.url, ...args], { encoding: 'utf8' });
    const i = out.lastIndexOf('\n');
    return { status: Number(out.slice(i + 1)), body: out.slice(0, i) };
  };
  const json = ['-H', 'Content-Type: application/json', '-H', 'Accept: application/json, text/event-stream'];
  const noSession = curl(...json, '-d', '{"jsonrpc":"2.0","id":1,"method":"tools/list"}');
  assert.equal(noSession.status, 400);
  assert.match(JSON.parse(noSession.body).error.message, /Mcp-Session-Id header is required/);
  const badOrigin = curl(...json, '-H', 'Origin: http://evil.example.com', '-d', '{}');
  assert.equal(badOrigin.status, 403);
  const badType = curl('-H', 'Content-Type: text/plain', '-d', '{}');
  assert.equal(badType.status, 415);
  assert.equal(execFileSync('curl', ['-s', server.url.replace('/mcp', '/healthz')], { encoding: 'utf8' }), '{"status":"ok"}');
  assert.equal(server.child.exitCode, null, 'server still running');
  assert.equal(server.stdout, '', 'nothing on stdout');
});
