// Starts `sandbox-mcp serve --http 127.0.0.1:PORT` for a test; resolves once it logs its URL.
import { spawn } from 'node:child_process';

export function startHttpServer(bin, { port = 0, stateDir, args = [], env = {} }) {
  const child = spawn(bin, ['serve', '--http', `127.0.0.1:${port}`, '--state-dir', stateDir, ...args], {
    env: { ...process.env, SSH_HOST: '', SANDBOX_MCP_HTTP_TOKEN: '', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${stderr}`)), 10000);
    child.stderr.on('data', (d) => {
      stderr += d;
      const m = /listening on (http:\/\/\S+\/mcp)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], child, stderr: () => stderr });
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${stderr}`)));
  });
}
