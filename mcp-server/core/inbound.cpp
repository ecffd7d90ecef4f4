#include "mcp-server/core/inbound.h"

#include "mcp-server/core/protocol.h"

#include <spdlog/spdlog.h>

namespace smcp::mcp::detail {

json make_error(const json& id, int code, std::string message, json data) {
  json err = {{"code", code}, {"message", std::move(message)}};
  if (!data.is_null()) {
    err["data"] = std::move(data);
  }
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(err)}};
}

json make_result(const json& id, json result) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

void Inbound::respond(std::optional<json> response, std::vector<std::function<void()>> on_sent) {
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

void Inbound::notify(const json& notification) {
  m_sink->send(serialize(notification));
}

void Inbound::seal() {
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

void Inbound::finish() {
  if (m_batch && !m_responses.empty()) {
    m_sink->send(serialize(m_responses));
    run_hooks(m_batch_hooks);
  }
  m_sink->end();
}

void Inbound::run_hooks(std::vector<std::function<void()>>& hooks) {
  for (auto& hook : hooks) {
    try {
      hook();
    } catch (const std::exception& e) {
      spdlog::error("after a response was sent: {}", e.what());
    }
  }
  hooks.clear();
}

void reply_error_now(std::shared_ptr<transport::MessageSink> reply, int code, std::string message) {
  Inbound inbound(std::move(reply), false);
  inbound.respond_now(make_error(nullptr, code, std::move(message)));
  inbound.seal();
}

} // namespace smcp::mcp::detail
