#include "mcp-server/core/protocol.h"

#include "mcp-server/core/json_schema.h"

#include <spdlog/spdlog.h>

#include <map>
#include <set>
#include <optional>
#include <stop_token>
#include <thread>

namespace smcp::mcp {

const std::vector<std::string>& supported_protocol_versions() {
  static const std::vector<std::string> versions = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};
  return versions;
}

bool is_supported_protocol_version(std::string_view version) {
  for (const auto& v : supported_protocol_versions()) {
    if (v == version) {
      return true;
    }
  }
  return false;
}

std::string serialize(const json& message) {
  return message.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

constexpr std::size_t k_max_nesting = 256;

json make_error(const json& id, int code, std::string message, json data = nullptr) {
  json err = {{"code", code}, {"message", std::move(message)}};
  if (!data.is_null()) {
    err["data"] = std::move(data);
  }
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(err)}};
}

json make_result(const json& id, json result) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

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
  void respond(std::optional<json> response, std::vector<std::function<void()>> on_sent = {}) {
    bool done;
    bool sent = false;
    {
      std::lock_guard lock(m_mutex);
      if (response) {
        if (m_batch) {
          m_responses.push_back(std::move(*response));
          for (auto& hook : on_sent) {
            m_batch_hooks.push_back(std::move(hook));
          }
        } else {
          m_sink->send(serialize(*response));
          sent = true;
        }
      }
      done = --m_pending == 0 && m_sealed;
    }
    if (sent) {
      run_hooks(on_sent);
    }
    if (done) {
      finish();
    }
  }

  // A response that was not expected (errors found before dispatch).
  void respond_now(json response) {
    expect();
    respond(std::move(response));
  }

  void notify(const json& notification) { m_sink->send(serialize(notification)); }

  // All messages of the inbound payload are dispatched.
  void seal() {
    bool done;
    {
      std::lock_guard lock(m_mutex);
      m_sealed = true;
      done = m_pending == 0;
    }
    if (done) {
      finish();
    }
  }

private:
  void finish() {
    if (m_batch && !m_responses.empty()) {
      m_sink->send(serialize(m_responses));
      run_hooks(m_batch_hooks);
    }
    m_sink->end();
  }

  static void run_hooks(std::vector<std::function<void()>>& hooks) {
    for (auto& hook : hooks) {
      try {
        hook();
      } catch (const std::exception& e) {
        spdlog::error("after a response was sent: {}", e.what());
      }
    }
    hooks.clear();
  }

  std::shared_ptr<transport::MessageSink> m_sink;
  bool m_batch;
  std::mutex m_mutex;
  json m_responses = json::array();
  std::vector<std::function<void()>> m_batch_hooks; // on_sent hooks of the batch's responses
  int m_pending = 0;
  bool m_sealed = false;
};

struct Call {
  std::stop_source stop;
  bool cancelled = false; // guarded by Session::m_mutex
  // ToolContext::on_response_sent hooks, handed over by the call's thread when its work returns.
  mutable std::vector<std::function<void()>> on_sent;
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

  void resource_updated(const std::string& uri) override {
    {
      std::lock_guard lock(m_mutex);
      if (m_closed || !m_unsolicited || !m_subscriptions.count(uri)) {
        return;
      }
    }
    m_unsolicited->send(
        serialize({{"jsonrpc", "2.0"}, {"method", "notifications/resources/updated"}, {"params", {{"uri", uri}}}}));
  }

  void server_log(LogLevel level, const std::string& logger, const std::string& text) override {
    {
      std::lock_guard lock(m_mutex);
      if (m_closed || !m_unsolicited || !m_log_level_set || level < m_log_level) {
        return;
      }
    }
    m_unsolicited->send(
        serialize({{"jsonrpc", "2.0"},
                   {"method", "notifications/message"},
                   {"params", {{"level", log_level_name(level)}, {"logger", logger}, {"data", text}}}}));
  }

  // Used by the per-call context.
  void send_log(Inbound& inbound, LogLevel level, const json& data);

private:
  void dispatch(const json& message, const std::shared_ptr<Inbound>& inbound);
  void handle_request(const std::string& method, const json& id, const json& params,
                      const std::shared_ptr<Inbound>& inbound);
  void handle_notification(const std::string& method, const json& params);
  json handle_initialize(const json& id, const json& params);
  void start_tool_call(const json& id, const json& params, const std::shared_ptr<Inbound>& inbound);
  // Runs `work` on a worker thread as a cancellable request; its result is the response (none is
  // sent when the request was cancelled). Answers with an error instead when it cannot start.
  void run_in_worker(const json& id, const std::shared_ptr<Inbound>& inbound, std::function<json(const Call&)> work);
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

// Per-call services. Notifications for the call (progress, logs) go out on the worker thread or
// any other; once the handler returned, the context is closed under the same lock, so nothing can
// follow the call's response. A client may also process notifications later than responses (the
// official TypeScript SDK handles a notification in a microtask but a response at once: a progress
// line read in the same chunk as its response is reported as "unknown token"), so the response
// waits until `quiet` has passed since the call's last progress notification.
class CallContext final : public ToolContext {
public:
  CallContext(std::shared_ptr<Session> session, std::shared_ptr<Inbound> inbound, std::stop_token stop,
              json progress_token)
      : m_session(std::move(session)), m_inbound(std::move(inbound)), m_stop(std::move(stop)),
        m_progress_token(std::move(progress_token)) {}

  std::stop_token stop_token() const override { return m_stop; }
  bool wants_progress() const override { return !m_progress_token.is_null(); }

  void progress(std::string message) override {
    if (m_progress_token.is_null() || m_stop.stop_requested()) {
      return;
    }
    std::lock_guard lock(m_mutex);
    if (m_closed) {
      return;
    }
    json params = {{"progressToken", m_progress_token}, {"progress", ++m_progress}, {"message", std::move(message)}};
    m_inbound->notify({{"jsonrpc", "2.0"}, {"method", "notifications/progress"}, {"params", std::move(params)}});
    m_last_progress = std::chrono::steady_clock::now();
  }

  void log(LogLevel level, json data) override {
    if (m_stop.stop_requested()) {
      return;
    }
    std::lock_guard lock(m_mutex);
    if (!m_closed) {
      m_session->send_log(*m_inbound, level, data);
    }
  }

  // No notification for this call is sent after this returns. Waits (at most `quiet`) so the last
  // progress notification reaches the client well before the response.
  void close(std::chrono::milliseconds quiet) {
    std::chrono::steady_clock::time_point last;
    {
      std::lock_guard lock(m_mutex);
      m_closed = true;
      last = m_last_progress;
    }
    if (m_progress > 0 && quiet.count() > 0) {
      std::this_thread::sleep_until(last + quiet);
    }
  }

  // Kept until the call's work returns, then handed to its Call (see start_tool_call).
  void on_response_sent(std::function<void()> hook) override {
    std::lock_guard lock(m_mutex);
    m_on_sent.push_back(std::move(hook));
  }
  std::vector<std::function<void()>> take_on_sent() {
    std::lock_guard lock(m_mutex);
    return std::move(m_on_sent);
  }

private:
  std::shared_ptr<Session> m_session;
  std::shared_ptr<Inbound> m_inbound;
  std::stop_token m_stop;
  json m_progress_token;
  std::mutex m_mutex;
  long m_progress = 0;
  bool m_closed = false;
  std::chrono::steady_clock::time_point m_last_progress;
  std::vector<std::function<void()>> m_on_sent;
};

void Session::receive_oversized(std::size_t bytes, std::size_t limit, std::shared_ptr<transport::MessageSink> reply) {
  auto inbound = std::make_shared<Inbound>(std::move(reply), false);
  inbound->respond_now(make_error(nullptr, error_code::invalid_request,
                                  "Message too large: " + std::to_string(bytes) + " bytes exceeds the limit of " +
                                      std::to_string(limit) +
                                      " bytes; the message was discarded. Send smaller requests "
                                      "(large data belongs in files on the host, read with remote_file_read)."));
  inbound->seal();
}

void Session::receive(std::string_view raw, std::shared_ptr<transport::MessageSink> reply) {
  if (nesting_depth(raw) > k_max_nesting) {
    auto inbound = std::make_shared<Inbound>(std::move(reply), false);
    inbound->respond_now(
        make_error(nullptr, error_code::parse_error,
                   "Parse error: JSON nested deeper than " + std::to_string(k_max_nesting) + " levels"));
    inbound->seal();
    return;
  }
  json message;
  try {
    message = json::parse(raw);
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for a number too large for a double (1e400): both are input
    // that is not JSON we can represent.
    auto inbound = std::make_shared<Inbound>(std::move(reply), false);
    std::string what = e.what();
    if (auto pos = what.find("parse error"); pos != std::string::npos) {
      what = what.substr(pos);
    } else if (auto end = what.find("] "); what.rfind("[json.exception.", 0) == 0 && end != std::string::npos) {
      what = what.substr(end + 2);
    }
    inbound->respond_now(make_error(nullptr, error_code::parse_error, "Parse error: " + what));
    inbound->seal();
    return;
  }

  if (message.is_array()) {
    auto inbound = std::make_shared<Inbound>(reply, true);
    if (message.empty()) {
      auto single = std::make_shared<Inbound>(std::move(reply), false);
      single->respond_now(make_error(nullptr, error_code::invalid_request, "Invalid Request: empty batch"));
      single->seal();
      return;
    }
    if (!batches_allowed()) {
      auto single = std::make_shared<Inbound>(std::move(reply), false);
      std::string version = protocol_version();
      single->respond_now(make_error(nullptr, error_code::invalid_request,
                                     version.empty()
                                         ? "Invalid Request: a JSON-RPC batch cannot carry or precede initialize; send "
                                           "initialize as a single message"
                                         : "Invalid Request: JSON-RPC batches are not supported in protocol version " +
                                               version + " (only in 2025-03-26); send messages one at a time"));
      single->seal();
      return;
    }
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
  handle_request(method, id, params, inbound);
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

void Session::handle_request(const std::string& method, const json& id, const json& params,
                             const std::shared_ptr<Inbound>& inbound) {
  spdlog::debug("request {} id {}", method, id.dump());
  const json p = params.is_null() ? json::object() : params;
  if (method == "initialize") {
    inbound->respond_now(handle_initialize(id, p));
    return;
  }
  if (method == "ping") {
    inbound->respond_now(make_result(id, json::object()));
    return;
  }
  {
    std::lock_guard lock(m_mutex);
    if (!m_initialize_answered) {
      inbound->respond_now(make_error(id, error_code::invalid_request,
                                      "Invalid Request: the session is not initialized; send 'initialize' first"));
      return;
    }
  }
  if (method == "tools/list") {
    if (p.contains("cursor") && !p["cursor"].is_string()) {
      inbound->respond_now(make_error(id, error_code::invalid_params, "Invalid params: 'cursor' must be a string"));
      return;
    }
    json tools = m_server->tools().list();
    if (!structured()) {
      for (auto& tool : tools) {
        tool.erase("outputSchema");
      }
    }
    inbound->respond_now(make_result(id, {{"tools", std::move(tools)}}));
    return;
  }
  if (method == "tools/call") {
    start_tool_call(id, p, inbound);
    return;
  }
  if (method == "logging/setLevel") {
    auto level_it = p.find("level");
    if (level_it == p.end() || !level_it->is_string()) {
      inbound->respond_now(make_error(id, error_code::invalid_params,
                                      "Invalid params: missing string field 'level' (one of debug, info, notice, "
                                      "warning, error, critical, alert, emergency)"));
      return;
    }
    auto level = parse_log_level(level_it->get<std::string>());
    if (!level) {
      inbound->respond_now(make_error(id, error_code::invalid_params,
                                      "Invalid params: 'level' must be one of debug, info, notice, warning, "
                                      "error, critical, alert, emergency; got " +
                                          level_it->dump()));
      return;
    }
    {
      std::lock_guard lock(m_mutex);
      m_log_level = *level;
      m_log_level_set = true;
    }
    inbound->respond_now(make_result(id, json::object()));
    return;
  }
  // Resources (job outputs, when a provider is configured). Prompts: none are offered; the empty
  // list lets clients that enumerate them at connect time proceed.
  if (method == "resources/list" || method == "resources/templates/list" || method == "prompts/list") {
    auto* provider = m_server->resources();
    if (method == "prompts/list" || !provider) {
      const char* key = method == "resources/list"             ? "resources"
                        : method == "resources/templates/list" ? "resourceTemplates"
                                                               : "prompts";
      inbound->respond_now(make_result(id, {{key, json::array()}}));
      return;
    }
    // The provider may ask hosts: never on the connection's reading thread.
    const bool templates = method == "resources/templates/list";
    run_in_worker(id, inbound, [provider, templates, id](const Call&) {
      try {
        return templates ? make_result(id, {{"resourceTemplates", provider->templates()}})
                         : make_result(id, {{"resources", provider->list()}});
      } catch (const std::exception& e) {
        return make_error(id, error_code::internal_error, std::string("Cannot list resources: ") + e.what());
      }
    });
    return;
  }
  if (method == "resources/subscribe" || method == "resources/unsubscribe" || method == "resources/read") {
    auto uri_it = p.find("uri");
    if (uri_it == p.end() || !uri_it->is_string()) {
      inbound->respond_now(make_error(id, error_code::invalid_params, "Invalid params: missing string field 'uri'"));
      return;
    }
    const std::string uri = uri_it->get<std::string>();
    if (method == "resources/read") {
      auto* provider = m_server->resources();
      if (!provider) {
        inbound->respond_now(
            make_error(id, error_code::resource_not_found, "Resource not found: " + uri, {{"uri", uri}}));
        return;
      }
      run_in_worker(id, inbound, [provider, uri, id](const Call&) {
        std::optional<json> contents;
        try {
          contents = provider->read(uri);
        } catch (const std::exception& e) {
          return make_error(id, error_code::internal_error, "Cannot read " + uri + ": " + e.what());
        }
        if (!contents) {
          return make_error(id, error_code::resource_not_found,
                            "Resource not found: " + uri +
                                " (resources are job outputs: job://BASH_ID/output; see resources/list)",
                            {{"uri", uri}});
        }
        return make_result(id, {{"contents", std::move(*contents)}});
      });
      return;
    }
    if (method == "resources/subscribe") {
      // Only to a resource that exists (the spec's -32002 otherwise); the check may touch the store.
      auto* provider = m_server->resources();
      run_in_worker(id, inbound, [self = shared_from_this(), provider, uri, id](const Call&) {
        bool exists = false;
        try {
          exists = provider && provider->exists(uri);
        } catch (const std::exception& e) {
          return make_error(id, error_code::internal_error, "Cannot subscribe to " + uri + ": " + e.what());
        }
        if (!exists) {
          return make_error(id, error_code::resource_not_found,
                            "Resource not found: " + uri +
                                " (resources are job outputs: job://BASH_ID/output; see resources/list)",
                            {{"uri", uri}});
        }
        std::lock_guard lock(self->m_mutex);
        self->m_subscriptions.insert(uri);
        return make_result(id, json::object());
      });
      return;
    }
    {
      std::lock_guard lock(m_mutex);
      m_subscriptions.erase(uri);
    }
    inbound->respond_now(make_result(id, json::object()));
    return;
  }
  if (method == "prompts/get") {
    inbound->respond_now(make_error(id, error_code::invalid_params,
                                    "Invalid params: unknown prompt " + p.value("name", json("")).dump() +
                                        " (this server offers no prompts)"));
    return;
  }
  inbound->respond_now(make_error(id, error_code::method_not_found, "Method not found: " + method));
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

void Session::start_tool_call(const json& id, const json& params, const std::shared_ptr<Inbound>& inbound) {
  auto name_it = params.find("name");
  if (name_it == params.end() || !name_it->is_string()) {
    inbound->respond_now(make_error(id, error_code::invalid_params, "Invalid params: missing string field 'name'"));
    return;
  }
  const std::string name = name_it->get<std::string>();
  const Tool* tool = m_server->tools().find(name);
  if (!tool) {
    std::string known;
    for (const auto& n : m_server->tools().names()) {
      known += (known.empty() ? "" : ", ") + n;
    }
    inbound->respond_now(
        make_error(id, error_code::invalid_params, "Unknown tool: '" + name + "'. Available tools: " + known));
    return;
  }
  json arguments = params.value("arguments", json::object());
  if (arguments.is_null()) {
    arguments = json::object();
  }
  if (!arguments.is_object()) {
    inbound->respond_now(make_error(id, error_code::invalid_params,
                                    "Invalid params: 'arguments' of tool " + name + " must be an object"));
    return;
  }
  if (auto err = validate_arguments(tool->input_schema, arguments)) {
    inbound->respond_now(
        make_error(id, error_code::invalid_params, "Invalid arguments for tool " + name + ": " + *err));
    return;
  }
  json progress_token = nullptr;
  if (auto meta = params.find("_meta"); meta != params.end() && meta->is_object()) {
    auto token = meta->find("progressToken");
    if (token != meta->end()) {
      if (!token->is_string() && !token->is_number_integer()) { // the spec's ProgressToken: string | integer
        const std::string got = token->is_structured() ? std::string("an ") + token->type_name() : token->dump();
        inbound->respond_now(
            make_error(id, error_code::invalid_params,
                       "Invalid params: '_meta.progressToken' must be a string or an integer, got " + got));
        return;
      }
      progress_token = *token;
    }
  }

  run_in_worker(
      id, inbound,
      [self = shared_from_this(), tool, arguments = std::move(arguments), id, inbound, progress_token,
       structured = structured()](const Call& call) {
        CallContext context(self, inbound, call.stop.get_token(), progress_token);
        // Closed on every way out of the handler, before the response is handed to the transport.
        struct CloseOnExit {
          CallContext& context;
          std::chrono::milliseconds quiet;
          ~CloseOnExit() { context.close(quiet); }
        };
        try {
          ToolResult result = [&] {
            CloseOnExit closer{context, self->m_server->options().progress_quiet};
            return tool->handler(arguments, context);
          }();
          json body = json::object();
          if (!result.is_error && !tool->output_schema.is_null()) {
            if (auto err = validate_json(tool->output_schema, result.structured, "")) {
              spdlog::error("tool {} produced a result that violates its outputSchema: {}", tool->name, *err);
              result = ToolResult::error("Internal error: tool " + tool->name + " produced an invalid result (" + *err +
                                         "); please report this bug");
              context.take_on_sent(); // the tool's answer is not delivered: its hooks must not run
            }
          }
          call.on_sent = context.take_on_sent(); // run by run_in_worker once the response is sent
          std::string text = result.text.empty() ? serialize(result.structured) : result.text;
          body["content"] = json::array({{{"type", "text"}, {"text", std::move(text)}}});
          if (!result.is_error && !result.structured.is_null() && structured) {
            body["structuredContent"] = std::move(result.structured);
          }
          if (result.is_error) {
            body["isError"] = true;
          }
          return make_result(id, std::move(body));
        } catch (const InvalidArgument& e) {
          return make_error(id, error_code::invalid_params,
                            "Invalid arguments for tool " + tool->name + ": '" + e.field() + "': " + e.what());
        } catch (const ToolError& e) {
          return make_result(id,
                             {{"content", json::array({{{"type", "text"}, {"text", e.what()}}})}, {"isError", true}});
        } catch (const std::exception& e) {
          spdlog::error("tool {} failed: {}", tool->name, e.what());
          return make_result(
              id,
              {{"content", json::array({{{"type", "text"},
                                         {"text", std::string("Internal error in ") + tool->name + ": " + e.what()}}})},
               {"isError", true}});
        }
      });
}

void Session::run_in_worker(const json& id, const std::shared_ptr<Inbound>& inbound,
                            std::function<json(const Call&)> work) {
  auto call = std::make_shared<Call>();
  const std::string key = id.dump();
  {
    std::lock_guard lock(m_mutex);
    if (m_closed) {
      inbound->respond_now(make_error(id, error_code::internal_error, "Session is closing"));
      return;
    }
    if (m_calls.count(key)) {
      inbound->respond_now(make_error(id, error_code::invalid_request,
                                      "Invalid Request: id " + key + " is already used by a request in flight"));
      return;
    }
    if (m_calls.size() >= m_server->options().max_concurrent_calls) {
      inbound->respond_now(make_error(id, error_code::internal_error,
                                      "Too many requests in flight (" + std::to_string(m_calls.size()) +
                                          "); wait for some to finish or use run_in_background"));
      return;
    }
    m_calls.emplace(key, call);
    ++m_workers;
  }
  inbound->expect();
  m_server->worker_started();
  std::thread([self = shared_from_this(), call, key, inbound, work = std::move(work)] {
    json response = work(*call);
    bool cancelled;
    {
      std::lock_guard lock(self->m_mutex);
      cancelled = call->cancelled;
      self->m_calls.erase(key);
    }
    if (cancelled) {
      spdlog::debug("request {} was cancelled; no response sent", key);
      inbound->respond(std::nullopt); // drops call->on_sent: nothing was delivered
    } else {
      inbound->respond(std::move(response), std::move(call->on_sent));
    }
    // Last touch of shared state: close() waits for this before it returns.
    {
      std::lock_guard lock(self->m_mutex);
      --self->m_workers;
    }
    self->m_idle.notify_all();
    self->m_server->worker_finished();
  }).detach();
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

} // namespace

Server::Server(ServerOptions options, std::shared_ptr<const ToolRegistry> tools,
               std::shared_ptr<ResourceProvider> resources)
    : m_options(std::move(options)), m_tools(std::move(tools)), m_resources(std::move(resources)) {}

std::shared_ptr<transport::Endpoint> Server::open(std::shared_ptr<transport::MessageSink> unsolicited) {
  auto session = std::make_shared<Session>(shared_from_this(), std::move(unsolicited));
  std::lock_guard lock(m_sessions_mutex);
  std::erase_if(m_sessions, [](const auto& w) { return w.expired(); });
  m_sessions.push_back(session);
  return session;
}

void Server::worker_started() {
  std::lock_guard lock(m_workers_mutex);
  ++m_workers;
}

void Server::worker_finished() {
  std::lock_guard lock(m_workers_mutex);
  --m_workers;
  m_workers_idle.notify_all();
}

bool Server::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(m_workers_mutex);
  return m_workers_idle.wait_for(lock, timeout, [&] { return m_workers == 0; });
}

std::vector<std::shared_ptr<ResourceSubscriber>> Server::live_sessions() {
  std::vector<std::shared_ptr<ResourceSubscriber>> live;
  std::lock_guard lock(m_sessions_mutex);
  for (const auto& w : m_sessions) {
    if (auto s = w.lock()) {
      live.push_back(std::move(s));
    }
  }
  return live;
}

void Server::broadcast_log(LogLevel level, const std::string& logger, const std::string& text) {
  for (auto& s : live_sessions()) {
    s->server_log(level, logger, text);
  }
}

void Server::notify_resource_updated(const std::string& uri) {
  for (auto& s : live_sessions()) {
    s->resource_updated(uri);
  }
}

} // namespace smcp::mcp
