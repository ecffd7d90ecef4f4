// The MCP protocol core: JSON-RPC 2.0 framing and routing, lifecycle and version negotiation,
// tools/list and tools/call (validated against each tool's schema, run on worker threads),
// progress, cancellation and logging. It knows nothing of stdio or HTTP.
#pragma once

#include "mcp-server/core/resource.h"
#include "mcp-server/core/tool_registry.h"
#include "transport/transport.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace smcp::mcp {

inline constexpr const char* k_latest_protocol_version = "2025-11-25";
// Newest first.
const std::vector<std::string>& supported_protocol_versions();
bool is_supported_protocol_version(std::string_view version);

namespace error_code {
inline constexpr int parse_error = -32700;
inline constexpr int invalid_request = -32600;
inline constexpr int method_not_found = -32601;
inline constexpr int invalid_params = -32602;
inline constexpr int internal_error = -32603;
inline constexpr int resource_not_found = -32002;
} // namespace error_code

// Whether tool results carry structuredContent (and tools/list outputSchema). Some clients put
// structuredContent, serialized as JSON, in front of the model instead of the text block (Claude
// Code 2.1 does); for them the text written for the model only reaches it without structured
// results. automatic: structured results for every client except those in text_first_clients.
enum class StructuredContent { automatic, always, never };

struct ServerOptions {
  std::string name = "sandbox-mcp";
  std::string title = "sandbox-mcp";
  std::string version;
  std::string instructions;
  // Tool calls running at once per session; beyond it a call is refused with a clear error.
  std::size_t max_concurrent_calls = 128;
  // How long close() waits for cancelled tool calls to return.
  std::chrono::milliseconds close_grace{10000};
  // A tool call's response is sent at least this long after its last progress notification, so a
  // client that handles notifications asynchronously sees the progress before the response.
  std::chrono::milliseconds progress_quiet{100};
  StructuredContent structured_content = StructuredContent::automatic;
  // clientInfo.name values served without structured results in automatic mode.
  std::vector<std::string> text_first_clients = {"claude-code"};
};

// Implemented by sessions so the server can tell them about resource changes.
class ResourceSubscriber {
public:
  virtual ~ResourceSubscriber() = default;
  virtual void resource_updated(const std::string& uri) = 0;
  // An operational log message for sessions whose client asked for logs (logging/setLevel).
  virtual void server_log(LogLevel level, const std::string& logger, const std::string& text) = 0;
};

class Server : public transport::EndpointFactory, public std::enable_shared_from_this<Server> {
public:
  Server(ServerOptions options, std::shared_ptr<const ToolRegistry> tools,
         std::shared_ptr<ResourceProvider> resources = nullptr);
  std::shared_ptr<transport::Endpoint> open(std::shared_ptr<transport::MessageSink> unsolicited) override;

  const ServerOptions& options() const { return m_options; }
  const ToolRegistry& tools() const { return *m_tools; }
  ResourceProvider* resources() const { return m_resources.get(); }

  // Sends notifications/resources/updated to every session subscribed to `uri` (thread-safe).
  void notify_resource_updated(const std::string& uri);
  // Sends notifications/message to every session whose client set a level at or below `level`
  // with logging/setLevel (thread-safe; never call it while holding a session's lock).
  void broadcast_log(LogLevel level, const std::string& logger, const std::string& text);

  // Request worker threads of all sessions. Before the objects the tools use are destroyed, wait
  // until none runs: a tool that ignores cancellation could otherwise use them after they are gone.
  void worker_started();
  void worker_finished();
  bool wait_idle(std::chrono::milliseconds timeout);

private:
  // The sessions still open, outside the lock (notifying them may take their own locks).
  std::vector<std::shared_ptr<ResourceSubscriber>> live_sessions();

  ServerOptions m_options;
  std::shared_ptr<const ToolRegistry> m_tools;
  std::shared_ptr<ResourceProvider> m_resources;
  std::mutex m_workers_mutex;
  std::condition_variable m_workers_idle;
  std::size_t m_workers = 0;
  std::mutex m_sessions_mutex;
  std::vector<std::weak_ptr<ResourceSubscriber>> m_sessions;
};

// Serialize a message for the wire; invalid UTF-8 in strings is replaced, never thrown on.
std::string serialize(const json& message);

} // namespace smcp::mcp
