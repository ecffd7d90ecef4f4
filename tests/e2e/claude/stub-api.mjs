// A local stand-in for the Anthropic Messages API, so Claude Code's real CLI can be driven without
// an account or a network: point it here with ANTHROPIC_BASE_URL and a placeholder key. The stub
// plays a scripted agent: each step is a tool call it asks Claude Code to make; Claude Code runs it
// against the MCP server and sends back the tool_result exactly as the model would see it, which the
// stub records. Requests that are not the agent loop (titles, quota checks) get a short text reply.
import http from 'node:http';

// steps: array of (previousResults) => {name, input, builtin?} | null (null: the agent stops with a
// text). toolPrefix: Claude Code names MCP tools mcp__<server>__<tool>; a `builtin` step names one of
// Claude Code's own tools (ToolSearch loads deferred tools' schemas, as a model must before it can
// call MCP tools). A request is the agent loop when it mentions toolPrefix (Claude Code lists
// deferred MCP tools by name in the conversation, and loaded ones in `tools`).
export async function startStub({ steps, toolPrefix }) {
  const state = { requests: [], results: [], errors: [] };

  function toolResults(messages) {
    const found = [];
    for (const m of messages ?? []) {
      if (m.role !== 'user' || !Array.isArray(m.content)) continue;
      for (const block of m.content) {
        if (block.type === 'tool_result') found.push(block);
      }
    }
    return found;
  }

  function reply(res, body, content, stopReason) {
    const message = {
      id: `msg_stub_${state.requests.length}`,
      type: 'message',
      role: 'assistant',
      model: body.model ?? 'stub',
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 1, output_tokens: 1 },
    };
    if (!body.stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ...message, content, stop_reason: stopReason }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (type, data) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
    send('message_start', { message });
    content.forEach((block, index) => {
      if (block.type === 'text') {
        send('content_block_start', { index, content_block: { type: 'text', text: '' } });
        send('content_block_delta', { index, delta: { type: 'text_delta', text: block.text } });
      } else {
        send('content_block_start', { index, content_block: { ...block, input: {} } });
        send('content_block_delta', {
          index,
          delta: { type: 'input_json_delta', partial_json: JSON.stringify(block.input) },
        });
      }
      send('content_block_stop', { index });
    });
    send('message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: 1 } });
    send('message_stop', {});
    res.end();
  }

  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      let body = {};
      try {
        body = raw ? JSON.parse(raw) : {};
      } catch {
        body = {};
      }
      state.requests.push({ method: req.method, url: req.url });
      if (req.method !== 'POST' || !req.url.startsWith('/v1/messages')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: 'stub' } }));
        return;
      }
      if (req.url.startsWith('/v1/messages/count_tokens')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ input_tokens: 1 }));
        return;
      }
      const isAgent = raw.includes(toolPrefix);
      if (!isAgent) {
        reply(res, body, [{ type: 'text', text: 'ok' }], 'end_turn');
        return;
      }
      const results = toolResults(body.messages);
      const step = results.length;
      if (step > 0) state.results[step - 1] = results[step - 1];
      let call = null;
      try {
        call = step < steps.length ? steps[step](state.results) : null;
      } catch (e) {
        state.errors.push(String(e));
      }
      if (!call) {
        reply(res, body, [{ type: 'text', text: 'done' }], 'end_turn');
        return;
      }
      reply(
        res,
        body,
        [
          {
            type: 'tool_use',
            id: `toolu_stub_${step}`,
            name: call.builtin ? call.name : toolPrefix + call.name,
            input: call.input,
          },
        ],
        'tool_use',
      );
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { url, state, close: () => new Promise((r) => server.close(r)) };
}

// What the model sees of one tool_result block: its text, however Claude Code shaped it.
export function modelText(result) {
  if (!result) return '';
  if (typeof result.content === 'string') return result.content;
  return (result.content ?? []).map((b) => (b.type === 'text' ? b.text : JSON.stringify(b))).join('\n');
}
