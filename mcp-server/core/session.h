// One MCP session (internal to the protocol core): parses and routes the messages of one client,
// keeps its negotiated version, log level, subscriptions and the tool calls in flight. The
// routing and lifecycle are in session.cpp, tool calls and workers in session_tool_calls.cpp,
// resources, logging and prompts in session_resources.cpp.
#pragma once

#include "mcp-server/core/inbound.h"
#include "mcp-server/core/protocol.h"

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stop_token>
#include <string>

namespace smcp::mcp::detail {

struct Call {
  std::stop_source stop;
  bool cancelled = false; // guarded by Session::m_mutex
  // ToolContext::on_response_sent hooks, handed over by the call's thread when its work returns.
  mutable std::vector<std::function<void()>> on_sent;
};

// A request being routed: `params` is an object (empty when the message had none).
struct Request {
  const std::string& method;
  const json& id;
  const json& params;
  const std::shared_ptr<Inbound>& inbound;

  void respond(json response) const { inbound->respond_now(std::move(response)); }
  void result(json result) const { respond(make_result(id, std::move(result))); }
  void error(int code, std::string message, json data = nullptr) const {
    respond(make_error(id, code, std::move(message), std::move(data)));
  }
};

class Session final : public transport::Endpoint,
                      public ResourceSubscriber,
                      public std::enable_shared_from_this<Session> {
public:
  Session(std::shared_ptr<Server> server, std::shared_ptr<transport::MessageSink> unsolicited)
      : m_server(std::move(server)), m_unsolicited(std::move(unsolicited)) {}

  void receive(std::string_view raw, std::shared_ptr<transport::MessageSink> reply) override;
  void receive_oversized(std::size_t bytes, std::size_t limit, std::shared_ptr<transport::MessageSink> reply) override;
  std::string protocol_version() const override {
    std::lock_guard lock(m_mutex);
    return m_version;
  }
  void close() override;

  void resource_updated(const std::string& uri) override;
  void server_log(LogLevel level, const std::string& logger, const std::string& text) override;

  // Used by the per-call context.
  void send_log(Inbound& inbound, LogLevel level, const json& data);

private:
  void dispatch(const json& message, const std::shared_ptr<Inbound>& inbound);
  void handle_request(const Request& request);
  void handle_notification(const std::string& method, const json& params);
  json handle_initialize(const json& id, const json& params);
  bool initialized() const;

  // session_tool_calls.cpp
  void handle_tools_list(const Request& request);
  void handle_tools_call(const Request& request);
  // Runs `work` on a worker thread as a cancellable request; its result is the response (none is
  // sent when the request was cancelled). Answers with an error instead when it cannot start.
  void run_in_worker(const json& id, const std::shared_ptr<Inbound>& inbound, std::function<json(const Call&)> work);

  // session_resources.cpp
  void handle_set_level(const Request& request);
  void handle_list_resources(const Request& request); // resources/list, resources/templates/list, prompts/list
  void handle_resource_uri(const Request& request);   // resources/read, resources/subscribe, resources/unsubscribe
  void handle_get_prompt(const Request& request);

  bool batches_allowed() const;
  bool structured() const {
    std::lock_guard lock(m_mutex);
    return m_structured;
  }

  std::shared_ptr<Server> m_server;
  std::shared_ptr<transport::MessageSink> m_unsolicited;

  mutable std::mutex m_mutex;
  std::condition_variable m_idle;
  std::string m_version; // negotiated; empty before initialize
  bool m_initialize_answered = false;
  bool m_closed = false;
  LogLevel m_log_level = LogLevel::warning;
  bool m_log_level_set = false; // the client asked for logs: operational messages go to it too
  json m_client_info;
  bool m_structured = true;                             // results carry structuredContent, tools/list outputSchema
  std::map<std::string, std::shared_ptr<Call>> m_calls; // in-flight tools/call by id
  std::set<std::string> m_subscriptions;                // resources/subscribe
  std::size_t m_workers = 0;                            // tool-call threads not yet finished
};

} // namespace smcp::mcp::detail
