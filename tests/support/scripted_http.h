// A Streamable HTTP transport in-process with a scripted protocol endpoint behind the
// EndpointFactory seam (what the real core cannot be made to do on demand: server-initiated
// messages on the GET stream, a reply that floods a client that went away, answers held until the
// test releases them), and the fixture that serves it on an ephemeral loopback port.
// Header-only; tests only.
#pragma once

#include "tests/support/raw_http.h"
#include "transport/http_transport.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace smcp::testing::http {

using transport::EndpointFactory;
using transport::HttpOptions;
using transport::HttpTransport;
using transport::MessageSink;

// Answers initialize and any request with {}; "emit" notifications send a server-initiated message;
// "held" requests are answered from another thread once the test calls release(), after
// `notifications` progress notifications.
class ScriptedEndpoint final : public transport::Endpoint {
public:
  explicit ScriptedEndpoint(std::shared_ptr<MessageSink> unsolicited) : m_unsolicited(std::move(unsolicited)) {}
  ~ScriptedEndpoint() override {
    if (m_worker.joinable()) {
      if (m_worker.get_id() == std::this_thread::get_id()) {
        m_worker.detach(); // the worker dropped the last reference (its reply sink held the session)
      } else {
        m_worker.join();
      }
    }
  }

  void receive(std::string_view raw, std::shared_ptr<MessageSink> reply) override {
    json m = json::parse(raw, nullptr, false);
    if (m.is_discarded() || !m.is_object()) {
      reply->send(R"({"error":{"code":-32700,"message":"Parse error"},"id":null,"jsonrpc":"2.0"})");
      reply->end();
      return;
    }
    const std::string method = m.value("method", "");
    if (!m.contains("id")) {
      if (method == "emit") {
        m_unsolicited->send(
            json({{"jsonrpc", "2.0"}, {"method", "notifications/message"}, {"params", m["params"]}}).dump());
      }
      reply->end();
      return;
    }
    if (method == "initialize") {
      {
        std::lock_guard lock(m_mutex);
        m_version = m["params"].value("protocolVersion", "2025-11-25");
      }
      reply->send(json({{"jsonrpc", "2.0"}, {"id", m["id"]}, {"result", {{"protocolVersion", m_version}}}}).dump());
      reply->end();
      return;
    }
    if (method == "held") {
      const int notifications = m["params"].value("notifications", 0);
      m_worker = std::thread([this, reply, id = m["id"], notifications] {
        {
          std::unique_lock lock(m_mutex);
          m_cv.wait(lock, [&] { return m_released || m_closed; });
        }
        auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < notifications; ++i) {
          reply->send(json({{"jsonrpc", "2.0"},
                            {"method", "notifications/progress"},
                            {"params", {{"progressToken", 1}, {"progress", i}}}})
                          .dump());
        }
        reply->send(json({{"jsonrpc", "2.0"}, {"id", id}, {"result", {{"done", true}}}}).dump());
        reply->end();
        std::lock_guard lock(m_mutex);
        m_send_time = std::chrono::steady_clock::now() - start;
        m_answered = true;
        m_cv.notify_all();
      });
      return;
    }
    reply->send(json({{"jsonrpc", "2.0"}, {"id", m["id"]}, {"result", json::object()}}).dump());
    reply->end();
  }

  void receive_oversized(std::size_t, std::size_t, std::shared_ptr<MessageSink> reply) override {
    reply->send(R"({"error":{"code":-32600,"message":"too large"},"id":null,"jsonrpc":"2.0"})");
    reply->end();
  }

  std::string protocol_version() const override {
    std::lock_guard lock(m_mutex);
    return m_version;
  }

  void close() override {
    std::lock_guard lock(m_mutex);
    m_closed = true;
    m_cv.notify_all();
  }

  void release() {
    std::lock_guard lock(m_mutex);
    m_released = true;
    m_cv.notify_all();
  }

  // Waits until the held request was answered; returns how long its sends took.
  std::chrono::steady_clock::duration wait_answered() {
    std::unique_lock lock(m_mutex);
    m_cv.wait_for(lock, 10s, [&] { return m_answered; });
    return m_send_time;
  }

  bool closed() const {
    std::lock_guard lock(m_mutex);
    return m_closed;
  }

private:
  std::shared_ptr<MessageSink> m_unsolicited;
  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  std::string m_version;
  bool m_released = false;
  bool m_answered = false;
  bool m_closed = false;
  std::chrono::steady_clock::duration m_send_time{};
  std::thread m_worker;
};

class ScriptedFactory final : public EndpointFactory {
public:
  std::shared_ptr<transport::Endpoint> open(std::shared_ptr<MessageSink> unsolicited) override {
    auto e = std::make_shared<ScriptedEndpoint>(std::move(unsolicited));
    std::lock_guard lock(m_mutex);
    m_endpoints.push_back(e);
    return e;
  }
  std::shared_ptr<ScriptedEndpoint> last() {
    std::lock_guard lock(m_mutex);
    return m_endpoints.empty() ? nullptr : m_endpoints.back();
  }
  std::vector<std::shared_ptr<ScriptedEndpoint>> all() {
    std::lock_guard lock(m_mutex);
    return m_endpoints;
  }

private:
  std::mutex m_mutex;
  std::vector<std::shared_ptr<ScriptedEndpoint>> m_endpoints;
};

// A request the scripted endpoint answers once released, after `notifications` progress notifications.
inline json held(int id, int notifications = 0) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"method", "held"}, {"params", {{"notifications", notifications}}}};
}

class HttpTransportTest : public ::testing::Test {
protected:
  void start(HttpOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    m_transport = std::make_unique<HttpTransport>(options, m_factory);
    m_transport->bind();
    m_port = m_transport->port();
    m_thread = std::thread([this] { m_rc = m_transport->run(); });
  }
  void TearDown() override {
    if (m_transport) {
      m_transport->stop();
      m_thread.join();
    }
  }

  bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 5s) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (condition()) {
        return true;
      }
      std::this_thread::sleep_for(20ms);
    }
    return condition();
  }

  // The transport still serves: a request on `session` is answered.
  void expect_serving_scripted(const std::string& session) {
    Response r = post(m_port, session, {{"jsonrpc", "2.0"}, {"id", 99}, {"method", "ping"}});
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json_body()["id"], 99) << r.body;
  }

  // Posts a held request `id` on `c` in `session` and reads its SSE answer up to the first event:
  // the call is under way. Call with ASSERT_NO_FATAL_FAILURE.
  void start_held_call(Connection& c, const std::string& session, int id, std::string& body) {
    c.send("POST", "/mcp", mcp_headers(session), held(id).dump());
    ASSERT_EQ(c.read_head().status, 200);
    ASSERT_TRUE(c.read_body_until(body, [](const std::string& b) { return !parse_sse(b).empty(); }));
  }

  ScriptedFactory m_factory;
  std::unique_ptr<HttpTransport> m_transport;
  std::thread m_thread;
  int m_port = 0;
  int m_rc = -1;
};

inline Headers get_headers(const std::string& session, const std::string& last_event_id = "") {
  Headers h = {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}};
  if (!last_event_id.empty()) {
    h.emplace_back("Last-Event-ID", last_event_id);
  }
  return h;
}

inline json emit(int n) {
  return {{"jsonrpc", "2.0"}, {"method", "emit"}, {"params", {{"n", n}}}};
}

} // namespace smcp::testing::http
