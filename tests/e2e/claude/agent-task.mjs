// The standard agent task, played through Claude Code's real CLI against the stub API: start a
// training run in the background, wait for "epoch 3" reading only the loss lines, read the log's
// last 20 lines, kill the run. Returns what the model saw of each tool result.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startStub, modelText } from './stub-api.mjs';

export const SERVER_NAME = 'sandbox-mcp';

// A stand-in for `python train.py`: noise lines, one loss line per epoch, a log file.
function trainCommand(workDir) {
  return (
    `cd ${workDir} && for i in 1 2 3 4 5 6 7 8; do ` +
    `echo "step $((i*100)) lr 3e-4 tok/s 51234"; echo "epoch $i loss 0.$((90-i*7))"; sleep 0.4; ` +
    `done 2>&1 | tee -a train.log`
  );
}

// Our tools the task uses; step 0 loads their schemas with Claude Code's ToolSearch (MCP tools are
// deferred: the model sees only their names until it asks).
export const TASK_TOOLS = ['remote_bash', 'remote_bash_output', 'remote_file_read', 'remote_bash_kill'];

export function agentSteps(workDir) {
  const id = (results) => {
    const m = /bash_[0-9a-f]{12}/.exec(modelText(results[1]));
    if (!m) throw new Error(`no bash_id in the model-visible start result: ${modelText(results[1])}`);
    return m[0];
  };
  return [
    () => ({
      name: 'ToolSearch',
      builtin: true,
      input: { query: `select:${TASK_TOOLS.map((t) => `mcp__${SERVER_NAME}__${t}`).join(',')}` },
    }),
    () => ({
      name: 'remote_bash',
      input: { command: trainCommand(workDir), run_in_background: true, description: 'training run' },
    }),
    (r) => ({
      name: 'remote_bash_output',
      input: { bash_id: id(r), filter: 'loss', until: 'epoch 3', wait_ms: 30000 },
    }),
    () => ({ name: 'remote_file_read', input: { file_path: path.join(workDir, 'train.log'), offset: -20 } }),
    (r) => ({ name: 'remote_bash_kill', input: { bash_id: id(r) } }),
  ];
}

function run(bin, args, env, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

// claudeBin: the CLI; serverArgv: how Claude Code starts the server (stdio); scratch: a directory
// for HOME and the work files. Returns {texts, results, claude, stub}.
export async function runAgentTask({ claudeBin, serverArgv, scratch, extraEnv = {} }) {
  const home = path.join(scratch, 'home');
  const workDir = path.join(scratch, 'work');
  fs.mkdirSync(home, { recursive: true });
  fs.mkdirSync(workDir, { recursive: true });
  const steps = agentSteps(workDir);
  const stub = await startStub({ steps, toolPrefix: `mcp__${SERVER_NAME}__` });
  const config = path.join(scratch, 'mcp.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      mcpServers: {
        [SERVER_NAME]: { command: serverArgv[0], args: serverArgv.slice(1), env: { SSH_HOST: '', ...extraEnv } },
      },
    }),
  );
  const env = {
    ...process.env,
    HOME: home,
    ANTHROPIC_BASE_URL: stub.url,
    ANTHROPIC_API_KEY: 'sk-ant-placeholder-not-a-key',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    MCP_CONNECTION_NONBLOCKING: 'false',
    MCP_TIMEOUT: '30000',
  };
  const claude = await run(
    claudeBin,
    [
      '-p',
      'Start the training run, wait for epoch 3, show me the last lines of its log, then stop it.',
      '--strict-mcp-config',
      '--mcp-config',
      config,
      '--allowedTools',
      `mcp__${SERVER_NAME}`,
      '--output-format',
      'json',
    ],
    env,
    120000,
  );
  await stub.close();
  // What the model read of our tools (the ToolSearch answer is Claude Code's, kept apart).
  const results = stub.state.results.slice(1);
  return {
    texts: results.map(modelText),
    results,
    schemas: modelText(stub.state.results[0]),
    claude,
    stub: stub.state,
    steps: steps.length - 1,
  };
}
