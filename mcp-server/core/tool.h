// What a tool is to the protocol core: a declaration (name, schemas, annotations) and a handler
// that talks to the outside world only through the context and the interfaces it was built with.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>

namespace smcp::mcp {

using json = nlohmann::json;

enum class LogLevel { debug, info, notice, warning, error, critical, alert, emergency };
std::optional<LogLevel> parse_log_level(std::string_view name);
std::string_view log_level_name(LogLevel level);

// Per-call services offered to a tool handler. Implemented by the protocol core; tests use fakes.
class ToolContext {
public:
  virtual ~ToolContext() = default;
  // Requested when the client cancels the call or the connection closes.
  virtual std::stop_token stop_token() const = 0;
  // True when the caller sent a progressToken.
  virtual bool wants_progress() const = 0;
  // Sends notifications/progress with an increasing counter (no-op without a progressToken).
  virtual void progress(std::string message) = 0;
  // Sends notifications/message when `level` passes the session's logging/setLevel threshold.
  virtual void log(LogLevel level, json data) = 0;
  // Runs `hook` once this call's response has been handed to the transport (written to stdout,
  // queued on the HTTP stream), on the call's thread; never when no response is sent (the call was
  // cancelled). A tool commits here what must not outlive an answer the caller never got
  // (remote_bash_output's read cursor). Contexts that cannot tell run it at once.
  // By value: the overrides keep the hook until the answer went out.
  virtual void on_response_sent(std::function<void()> hook) { hook(); } // NOLINT(performance-unnecessary-value-param)
};

struct ToolResult {
  json structured; // structuredContent; must match the tool's outputSchema unless is_error
  bool is_error = false;
  std::string text; // text content; the JSON of `structured` when empty

  static ToolResult ok(json structured) { return ToolResult{std::move(structured), false, {}}; }
  static ToolResult error(std::string message) { return ToolResult{nullptr, true, std::move(message)}; }
};

// Thrown by a handler: the tool ran and failed in a way the model can act on (isError result).
class ToolError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Thrown by a handler: an argument is well-typed but unusable (bad regex, ...): JSON-RPC -32602.
class InvalidArgument : public std::runtime_error {
public:
  InvalidArgument(std::string field, const std::string& message)
      : std::runtime_error(message), m_field(std::move(field)) {}
  const std::string& field() const { return m_field; }

private:
  std::string m_field;
};

struct ToolAnnotations {
  bool read_only = false;
  bool destructive = true;
  bool idempotent = false;
  bool open_world = true;
};

struct Tool {
  std::string name;
  std::string title;
  std::string description;
  json input_schema;
  json output_schema;
  ToolAnnotations annotations;
  std::function<ToolResult(const json& arguments, ToolContext& context)> handler;
};

} // namespace smcp::mcp
