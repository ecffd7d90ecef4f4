// End-to-end over stdio for container sandboxes: the official MCP TypeScript SDK client spawns
// `sandbox-mcp serve` in a fresh git repository, creates a sandbox (worktree + podman container +
// tmux), runs a command inside it through remote_bash {sandbox}, removes it and checks that the
// listing no longer has it. Skipped, with the reason printed, only when podman is not installed or
// the image localhost/sandbox-mcp:latest is not built (`sandbox-mcp image build`).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const BIN = process.env.SANDBOX_MCP_BIN;
assert.ok(BIN, 'SANDBOX_MCP_BIN must name the sandbox-mcp binary');

const IMAGE = 'localhost/sandbox-mcp:latest';
const NAME = 'e2e1';

// Why the test cannot run here, or null when it can.
function skipReason() {
  const version = spawnSync('podman', ['--version'], { encoding: 'utf8' });
  if (version.error) {
    return `podman is not installed (${version.error.code}); run scripts/install-deps.sh --sandbox (docs/sandboxes.md)`;
  }
  const exists = spawnSync('podman', ['image', 'exists', IMAGE], { encoding: 'utf8' });
  if (exists.status !== 0) {
    return `image ${IMAGE} is not built (podman image exists: ${exists.status}${
      exists.stderr ? `, ${exists.stderr.trim()}` : ''}); build it with: sandbox-mcp image build`;
  }
  return null;
}

function git(cwd, ...args) {
  const r = spawnSync('git', args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const made = []; // temp dirs to remove
let conn = null; // {client, stderr}
let created = false; // whether e2e1 may still exist

after(async () => {
  if (conn && created) {
    try {
      await conn.client.callTool({ name: 'sandbox_rm', arguments: { name: NAME } });
    } catch (e) {
      console.error(`cleanup: sandbox_rm ${NAME}: ${e.message}`);
    }
  }
  await conn?.client.close();
  for (const dir of made) {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('sandbox_new, remote_bash inside, sandbox_rm, sandbox_ls', { timeout: 180000 }, async (t) => {
  const reason = skipReason();
  if (reason) {
    console.log(`# SKIP sandbox e2e: ${reason}`);
    t.skip(reason);
    return;
  }
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'smcp-e2e-sbx-state-'));
  made.push(stateDir);
  // realpath: the server canonicalizes its repo_base, and /tmp may be a symbolic link.
  const repo = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'smcp-e2e-sbx-repo-')));
  made.push(repo);
  git(repo, 'init', '-q', '-b', 'main');
  git(repo, '-c', 'user.name=e2e', '-c', 'user.email=e2e@example.invalid', 'commit', '-q', '--allow-empty', '-m', 'init');

  const transport = new StdioClientTransport({
    command: BIN,
    args: ['serve', '--state-dir', stateDir],
    cwd: repo,
    env: { ...process.env, SSH_HOST: '' },
    stderr: 'pipe',
  });
  const stderr = [];
  transport.stderr?.on('data', (d) => stderr.push(d.toString()));
  const client = new Client({ name: 'sandbox-mcp-e2e-sandbox', version: '1.0.0' });
  await client.connect(transport);
  conn = { client, stderr };
  const why = (r) => `${JSON.stringify(r.content)}\nserver stderr:\n${stderr.join('')}`;

  created = true;
  const made1 = await client.callTool({ name: 'sandbox_new', arguments: { name: NAME } }, undefined, {
    timeout: 170000,
  });
  assert.ok(!made1.isError, `sandbox_new failed: ${why(made1)}`);
  const s = made1.structuredContent;
  assert.equal(s.name, NAME);
  assert.equal(s.host, 'local');
  assert.ok(s.work_dir.endsWith(`/.git/sandbox-mcp/sandboxes/${NAME}`), `work_dir ${s.work_dir}`);
  assert.equal(s.work_dir, `${repo}/.git/sandbox-mcp/sandboxes/${NAME}`);
  assert.equal(typeof s.container, 'string');
  assert.ok(s.container.length > 0, 'container is named');
  assert.match(s.attach_command, /tmux/);
  assert.equal(s.state, 'running');
  assert.equal(s.branch, 'main');
  assert.ok(fs.existsSync(s.work_dir), 'the worktree exists on the host');

  const ran = await client.callTool({ name: 'remote_bash', arguments: { sandbox: NAME, command: 'pwd; id -un' } });
  assert.ok(!ran.isError, `remote_bash failed: ${why(ran)}`);
  assert.equal(ran.structuredContent.exit_code, 0, why(ran));
  assert.equal(ran.structuredContent.stdout, '/workspace\nagent\n');
  assert.equal(ran.structuredContent.host, `sandbox:${NAME}`);

  const listed = await client.callTool({ name: 'sandbox_ls', arguments: {} });
  assert.ok(!listed.isError, `sandbox_ls failed: ${why(listed)}`);
  const mine = listed.structuredContent.sandboxes.find((x) => x.name === NAME);
  assert.ok(mine, 'sandbox_ls lists the new sandbox');
  assert.equal(mine.state, 'running');
  assert.equal(mine.work.state, 'clean', `nothing uncommitted yet: ${JSON.stringify(mine.work)}`);

  const removed = await client.callTool({ name: 'sandbox_rm', arguments: { name: NAME } });
  assert.ok(!removed.isError, `sandbox_rm failed: ${why(removed)}`);
  assert.equal(removed.structuredContent.name, NAME);
  assert.equal(removed.structuredContent.removed, true);
  created = false;
  assert.ok(!fs.existsSync(s.work_dir), 'the worktree is gone');
  const gone = spawnSync('podman', ['container', 'exists', s.container]);
  assert.notEqual(gone.status, 0, `container ${s.container} is gone`);

  const after1 = await client.callTool({ name: 'sandbox_ls', arguments: {} });
  assert.ok(!after1.isError, `sandbox_ls failed: ${why(after1)}`);
  assert.deepEqual(
    after1.structuredContent.sandboxes.filter((x) => x.name === NAME),
    [],
    'sandbox_ls no longer lists it',
  );
});
