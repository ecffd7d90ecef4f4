// tools/list and tools/call: a call's arguments are checked against the tool's schema, its
// handler runs on a worker thread with a CallContext (progress, logs, cancellation), and its
// result becomes the response (checked against the tool's outputSchema).
#include "mcp-server/core/json_schema.h"
#include "mcp-server/core/session.h"

#include <spdlog/spdlog.h>

#include <thread>

namespace smcp::mcp::detail {

namespace {

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

  // Kept until the call's work returns, then handed to its Call (see handle_tools_call).
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

struct ToolCallOptions {
  bool structured; // the session's results carry structuredContent
  std::chrono::milliseconds progress_quiet;
};

// Runs the tool's handler and makes its response: the result (checked against the outputSchema),
// or the error its exception stands for.
json tool_call_response(const Tool& tool, const json& arguments, CallContext& context, const Call& call, const json& id,
                        const ToolCallOptions& options) {
  // Closed on every way out of the handler, before the response is handed to the transport.
  struct CloseOnExit {
    CallContext& context;
    std::chrono::milliseconds quiet;
    ~CloseOnExit() { context.close(quiet); }
  };
  try {
    ToolResult result = [&] {
      CloseOnExit closer{context, options.progress_quiet};
      return tool.handler(arguments, context);
    }();
    json body = json::object();
    if (!result.is_error && !tool.output_schema.is_null()) {
      if (auto err = validate_json(tool.output_schema, result.structured, "")) {
        spdlog::error("tool {} produced a result that violates its outputSchema: {}", tool.name, *err);
        result = ToolResult::error("Internal error: tool " + tool.name + " produced an invalid result (" + *err +
                                   "); please report this bug");
        context.take_on_sent(); // the tool's answer is not delivered: its hooks must not run
      }
    }
    call.on_sent = context.take_on_sent(); // run by run_in_worker once the response is sent
    std::string text = result.text.empty() ? serialize(result.structured) : result.text;
    body["content"] = json::array({{{"type", "text"}, {"text", std::move(text)}}});
    if (!result.is_error && !result.structured.is_null() && options.structured) {
      body["structuredContent"] = std::move(result.structured);
    }
    if (result.is_error) {
      body["isError"] = true;
    }
    return make_result(id, std::move(body));
  } catch (const InvalidArgument& e) {
    return make_error(id, error_code::invalid_params,
                      "Invalid arguments for tool " + tool.name + ": '" + e.field() + "': " + e.what());
  } catch (const ToolError& e) {
    return make_result(id, {{"content", json::array({{{"type", "text"}, {"text", e.what()}}})}, {"isError", true}});
  } catch (const std::exception& e) {
    spdlog::error("tool {} failed: {}", tool.name, e.what());
    return make_result(
        id,
        {{"content",
          json::array({{{"type", "text"}, {"text", std::string("Internal error in ") + tool.name + ": " + e.what()}}})},
         {"isError", true}});
  }
}

} // namespace

void Session::handle_tools_list(const Request& r) {
  if (r.params.contains("cursor") && !r.params["cursor"].is_string()) {
    r.error(error_code::invalid_params, "Invalid params: 'cursor' must be a string");
    return;
  }
  json tools = m_server->tools().list();
  if (!structured()) {
    for (auto& tool : tools) {
      tool.erase("outputSchema");
    }
  }
  r.result({{"tools", std::move(tools)}});
}

void Session::handle_tools_call(const Request& r) {
  const json& params = r.params;
  auto name_it = params.find("name");
  if (name_it == params.end() || !name_it->is_string()) {
    r.error(error_code::invalid_params, "Invalid params: missing string field 'name'");
    return;
  }
  const std::string name = name_it->get<std::string>();
  const Tool* tool = m_server->tools().find(name);
  if (!tool) {
    std::string known;
    for (const auto& n : m_server->tools().names()) {
      known += (known.empty() ? "" : ", ") + n;
    }
    r.error(error_code::invalid_params, "Unknown tool: '" + name + "'. Available tools: " + known);
    return;
  }
  json arguments = params.value("arguments", json::object());
  if (arguments.is_null()) {
    arguments = json::object();
  }
  if (!arguments.is_object()) {
    r.error(error_code::invalid_params, "Invalid params: 'arguments' of tool " + name + " must be an object");
    return;
  }
  if (auto err = validate_arguments(tool->input_schema, arguments)) {
    r.error(error_code::invalid_params, "Invalid arguments for tool " + name + ": " + *err);
    return;
  }
  json progress_token = nullptr;
  if (auto meta = params.find("_meta"); meta != params.end() && meta->is_object()) {
    auto token = meta->find("progressToken");
    if (token != meta->end()) {
      if (!token->is_string() && !token->is_number_integer()) { // the spec's ProgressToken: string | integer
        const std::string got = token->is_structured() ? std::string("an ") + token->type_name() : token->dump();
        r.error(error_code::invalid_params,
                "Invalid params: '_meta.progressToken' must be a string or an integer, got " + got);
        return;
      }
      progress_token = *token;
    }
  }

  run_in_worker(r.id, r.inbound,
                [self = shared_from_this(), tool, arguments = std::move(arguments), id = r.id, inbound = r.inbound,
                 progress_token, structured = structured()](const Call& call) {
                  CallContext context(self, inbound, call.stop.get_token(), progress_token);
                  return tool_call_response(*tool, arguments, context, call, id,
                                            ToolCallOptions{structured, self->m_server->options().progress_quiet});
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

} // namespace smcp::mcp::detail
