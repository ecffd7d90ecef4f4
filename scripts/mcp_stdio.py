"""A minimal MCP client over a server's stdio (line-delimited JSON-RPC) for the scripts that drive
the real binary: scripts/gpu-check.sh and tests/bench/sandbox_bench.sh (python3 standard library
only; they put this folder on PYTHONPATH)."""
import json
import subprocess


class StdioClient:
    def __init__(self, argv, cwd=None, stderr=None):
        self.server = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=stderr, text=True, bufsize=1)
        self.next_id = 0

    def send(self, message):
        self.server.stdin.write(json.dumps(message) + "\n")
        self.server.stdin.flush()

    def request(self, method, params):
        """The response to one request (a result or an error), skipping notifications."""
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            line = self.server.stdout.readline()
            if not line:
                raise RuntimeError("the server closed its output")
            msg = json.loads(line)
            if msg.get("id") == self.next_id:
                return msg

    def initialize(self, client_name, protocol_version="2025-11-25"):
        msg = self.request("initialize", {"protocolVersion": protocol_version, "capabilities": {},
                                          "clientInfo": {"name": client_name, "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return msg

    def close(self, timeout=30):
        self.server.stdin.close()
        self.server.wait(timeout=timeout)
