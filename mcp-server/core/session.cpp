// A session's message handling: parsing (nesting limit, batches), JSON-RPC checks and routing
// to the handlers, notifications (cancellation), initialize and version negotiation, and close.
#include "mcp-server/core/session.h"

#include <spdlog/spdlog.h>

namespace smcp::mcp::detail {

namespace {

constexpr std::size_t k_max_nesting = 256;

// Depth of bracket nesting outside strings; parsing deeper input would risk the stack.
std::size_t nesting_depth(std::string_view raw) {
  std::size_t depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : raw) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > k_max_nesting) {
        return max_depth;
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return max_depth;
}

bool wants_structured(const ServerOptions& options, const json& client_info) {
  switch (options.structured_content) {
  case StructuredContent::always:
    return true;
  case StructuredContent::never:
    return false;
  case StructuredContent::automatic:
    break;
  }
  auto name = client_info.find("name");
  if (name == client_info.end() || !name->is_string()) {
    return true;
  }
  for (const auto& n : options.text_first_clients) {
    if (n == name->get_ref<const std::string&>()) {
      return false;
    }
  }
  return true;
}

bool valid_id(const json& id) {
  return id.is_string() || id.is_number_integer();
}

} // namespace

void Session::receive_oversized(std::size_t bytes, std::size_t limit, std::shared_ptr<transport::MessageSink> reply) {
  reply_error_now(std::move(reply), error_code::invalid_request,
                  "Message too large: " + std::to_string(bytes) + " bytes exceeds the limit of " +
                      std::to_string(limit) +
                      " bytes; the message was discarded. Send smaller requests "
                      "(large data belongs in files on the host, read with remote_file_read).");
}

void Session::receive(std::string_view raw, std::shared_ptr<transport::MessageSink> reply) {
  if (nesting_depth(raw) > k_max_nesting) {
    reply_error_now(std::move(reply), error_code::parse_error,
                    "Parse error: JSON nested deeper than " + std::to_string(k_max_nesting) + " levels");
    return;
  }
  json message;
  try {
    message = json::parse(raw);
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for a number too large for a double (1e400): both are input
    // that is not JSON we can represent.
    std::string what = e.what();
    if (auto pos = what.find("parse error"); pos != std::string::npos) {
      what = what.substr(pos);
    } else if (auto end = what.find("] "); what.rfind("[json.exception.", 0) == 0 && end != std::string::npos) {
      what = what.substr(end + 2);
    }
    reply_error_now(std::move(reply), error_code::parse_error, "Parse error: " + what);
    return;
  }

  if (message.is_array()) {
    if (message.empty()) {
      reply_error_now(std::move(reply), error_code::invalid_request, "Invalid Request: empty batch");
      return;
    }
    if (!batches_allowed()) {
      std::string version = protocol_version();
      reply_error_now(std::move(reply), error_code::invalid_request,
                      version.empty() ? "Invalid Request: a JSON-RPC batch cannot carry or precede initialize; send "
                                        "initialize as a single message"
                                      : "Invalid Request: JSON-RPC batches are not supported in protocol version " +
                                            version + " (only in 2025-03-26); send messages one at a time");
      return;
    }
    auto inbound = std::make_shared<Inbound>(std::move(reply), true);
    for (const auto& m : message) {
      dispatch(m, inbound);
    }
    inbound->seal();
    return;
  }
  auto inbound = std::make_shared<Inbound>(std::move(reply), false);
  dispatch(message, inbound);
  inbound->seal();
}

bool Session::batches_allowed() const {
  std::lock_guard lock(m_mutex);
  return m_version == "2025-03-26";
}

void Session::dispatch(const json& message, const std::shared_ptr<Inbound>& inbound) {
  if (!message.is_object()) {
    inbound->respond_now(
        make_error(nullptr, error_code::invalid_request, "Invalid Request: a JSON-RPC message must be an object"));
    return;
  }
  auto id_it = message.find("id");
  json id = id_it != message.end() && valid_id(*id_it) ? *id_it : json(nullptr);
  auto jsonrpc = message.find("jsonrpc");
  if (jsonrpc == message.end() || *jsonrpc != "2.0") {
    inbound->respond_now(make_error(id, error_code::invalid_request, "Invalid Request: 'jsonrpc' must be \"2.0\""));
    return;
  }
  auto method_it = message.find("method");
  if (method_it == message.end()) {
    if (id_it != message.end() && (message.contains("result") || message.contains("error"))) {
      spdlog::debug("ignoring a response from the client (id {})", id_it->dump());
      return; // a response to a server request; we send none that expect answers
    }
    inbound->respond_now(make_error(id, error_code::invalid_request, "Invalid Request: missing 'method'"));
    return;
  }
  if (!method_it->is_string()) {
    inbound->respond_now(make_error(id, error_code::invalid_request, "Invalid Request: 'method' must be a string"));
    return;
  }
  const std::string& method = method_it->get_ref<const std::string&>();
  json params = message.value("params", json(nullptr));
  if (!params.is_null() && !params.is_object()) {
    if (id_it == message.end()) {
      spdlog::warn("notification {} with non-object params ignored", method);
      return;
    }
    inbound->respond_now(
        make_error(id, error_code::invalid_params, "Invalid params: 'params' must be an object for " + method));
    return;
  }
  if (id_it == message.end()) {
    handle_notification(method, params);
    return;
  }
  if (!valid_id(*id_it)) {
    inbound->respond_now(make_error(nullptr, error_code::invalid_request,
                                    "Invalid Request: 'id' must be a string or an integer (MCP forbids null)"));
    return;
  }
  const json object_params = params.is_null() ? json::object() : params;
  handle_request(Request{method, id, object_params, inbound});
}

void Session::handle_notification(const std::string& method, const json& params) {
  if (method == "notifications/initialized") {
    spdlog::debug("client reports initialized");
  } else if (method == "notifications/cancelled") {
    if (!params.is_object() || !params.contains("requestId")) {
      spdlog::warn("notifications/cancelled without requestId ignored");
      return;
    }
    std::string key = params["requestId"].dump();
    std::lock_guard lock(m_mutex);
    if (auto it = m_calls.find(key); it != m_calls.end()) {
      it->second->cancelled = true;
      it->second->stop.request_stop();
      spdlog::info("request {} cancelled by the client: {}", key, params.value("reason", "(no reason)"));
    } else {
      spdlog::debug("cancellation for unknown or finished request {} ignored", key);
    }
  } else {
    spdlog::debug("ignoring notification {}", method);
  }
}

bool Session::initialized() const {
  std::lock_guard lock(m_mutex);
  return m_initialize_answered;
}

void Session::handle_request(const Request& r) {
  spdlog::debug("request {} id {}", r.method, r.id.dump());
  if (r.method == "initialize") {
    r.respond(handle_initialize(r.id, r.params));
    return;
  }
  if (r.method == "ping") {
    r.result(json::object());
    return;
  }
  if (!initialized()) {
    r.error(error_code::invalid_request, "Invalid Request: the session is not initialized; send 'initialize' first");
    return;
  }
  using Handler = void (Session::*)(const Request&);
  static const std::map<std::string, Handler, std::less<>> handlers = {
      {"tools/list", &Session::handle_tools_list},
      {"tools/call", &Session::handle_tools_call},
      {"logging/setLevel", &Session::handle_set_level},
      {"resources/list", &Session::handle_list_resources},
      {"resources/templates/list", &Session::handle_list_resources},
      {"prompts/list", &Session::handle_list_resources},
      {"resources/read", &Session::handle_resource_uri},
      {"resources/subscribe", &Session::handle_resource_uri},
      {"resources/unsubscribe", &Session::handle_resource_uri},
      {"prompts/get", &Session::handle_get_prompt},
  };
  if (auto it = handlers.find(r.method); it != handlers.end()) {
    (this->*it->second)(r);
    return;
  }
  r.error(error_code::method_not_found, "Method not found: " + r.method);
}

json Session::handle_initialize(const json& id, const json& params) {
  auto pv = params.find("protocolVersion");
  if (pv == params.end() || !pv->is_string()) {
    return make_error(id, error_code::invalid_params,
                      "Invalid params: 'protocolVersion' must be a string, e.g. \"" +
                          std::string(k_latest_protocol_version) + "\"");
  }
  if (params.contains("capabilities") && !params["capabilities"].is_object()) {
    return make_error(id, error_code::invalid_params, "Invalid params: 'capabilities' must be an object");
  }
  if (params.contains("clientInfo") && !params["clientInfo"].is_object()) {
    return make_error(id, error_code::invalid_params, "Invalid params: 'clientInfo' must be an object");
  }
  std::string requested = pv->get<std::string>();
  std::string version = is_supported_protocol_version(requested) ? requested : k_latest_protocol_version;
  {
    std::lock_guard lock(m_mutex);
    if (m_initialize_answered) {
      return make_error(id, error_code::invalid_request, "Invalid Request: the session is already initialized");
    }
    m_initialize_answered = true;
    m_version = version;
    m_client_info = params.value("clientInfo", json::object());
    m_structured = wants_structured(m_server->options(), m_client_info);
  }
  spdlog::info("initialize: client {} {} asked for protocol {}, using {}{}", m_client_info.value("name", "?"),
               m_client_info.value("version", "?"), requested, version,
               structured() ? "" : "; results as text only (no structuredContent)");
  const auto& opts = m_server->options();
  json result = {
      {"protocolVersion", version},
      {"capabilities",
       {{"tools", {{"listChanged", false}}},
        {"logging", json::object()},
        {"resources", {{"subscribe", true}, {"listChanged", false}}},
        {"prompts", {{"listChanged", false}}}}},
      {"serverInfo", {{"name", opts.name}, {"title", opts.title}, {"version", opts.version}}},
  };
  if (!opts.instructions.empty()) {
    result["instructions"] = opts.instructions;
  }
  return make_result(id, std::move(result));
}

void Session::resource_updated(const std::string& uri) {
  {
    std::lock_guard lock(m_mutex);
    if (m_closed || !m_unsolicited || !m_subscriptions.count(uri)) {
      return;
    }
  }
  m_unsolicited->send(
      serialize({{"jsonrpc", "2.0"}, {"method", "notifications/resources/updated"}, {"params", {{"uri", uri}}}}));
}

void Session::server_log(LogLevel level, const std::string& logger, const std::string& text) {
  {
    std::lock_guard lock(m_mutex);
    if (m_closed || !m_unsolicited || !m_log_level_set || level < m_log_level) {
      return;
    }
  }
  m_unsolicited->send(serialize({{"jsonrpc", "2.0"},
                                 {"method", "notifications/message"},
                                 {"params", {{"level", log_level_name(level)}, {"logger", logger}, {"data", text}}}}));
}

void Session::send_log(Inbound& inbound, LogLevel level, const json& data) {
  {
    std::lock_guard lock(m_mutex);
    if (level < m_log_level) {
      return;
    }
  }
  inbound.notify({{"jsonrpc", "2.0"},
                  {"method", "notifications/message"},
                  {"params", {{"level", log_level_name(level)}, {"logger", "sandbox-mcp"}, {"data", data}}}});
}

void Session::close() {
  std::unique_lock lock(m_mutex);
  m_closed = true;
  for (auto& [key, call] : m_calls) {
    call->cancelled = true;
    call->stop.request_stop();
  }
  if (!m_idle.wait_for(lock, m_server->options().close_grace, [&] { return m_workers == 0; })) {
    spdlog::warn("{} tool call(s) still running after close", m_workers);
  }
}

} // namespace smcp::mcp::detail
