// JSON-RPC response building and the collection of everything written back for one inbound
// message (internal to the protocol core: used by protocol.cpp and the session_*.cpp files).
#pragma once

#include "mcp-server/core/tool.h"
#include "transport/transport.h"

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace smcp::mcp::detail {

json make_error(const json& id, int code, std::string message, json data = nullptr);
json make_result(const json& id, json result);

// Everything written back for one inbound message: responses (collected into an array for a
// batch) and the notifications tied to its requests. Ends the sink after the last response.
class Inbound {
public:
  Inbound(std::shared_ptr<transport::MessageSink> sink, bool batch) : m_sink(std::move(sink)), m_batch(batch) {}

  void expect() {
    std::lock_guard lock(m_mutex);
    ++m_pending;
  }

  // A response for an expected request (nullopt: the request was cancelled, send nothing).
  // `on_sent` (ToolContext::on_response_sent hooks) run once the response is handed to the sink:
  // right after it for a single message, after the batch array for a batch; dropped with no response.
  void respond(std::optional<json> response, std::vector<std::function<void()>> on_sent = {});

  // A response that was not expected (errors found before dispatch).
  void respond_now(json response) {
    expect();
    respond(std::move(response));
  }

  void notify(const json& notification);

  // All messages of the inbound payload are dispatched.
  void seal();

private:
  void finish();
  static void run_hooks(std::vector<std::function<void()>>& hooks);

  std::shared_ptr<transport::MessageSink> m_sink;
  bool m_batch;
  std::mutex m_mutex;
  json m_responses = json::array();
  std::vector<std::function<void()>> m_batch_hooks; // on_sent hooks of the batch's responses
  int m_pending = 0;
  bool m_sealed = false;
};

// A single message's error response, sent at once (errors found before a message is dispatched).
void reply_error_now(std::shared_ptr<transport::MessageSink> reply, int code, std::string message);

} // namespace smcp::mcp::detail
