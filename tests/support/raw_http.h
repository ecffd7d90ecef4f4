// A raw HTTP/1.1 client over loopback sockets for tests of the Streamable HTTP transport: every
// header (Host, Origin, Accept, ...) is under the test's control, bodies may go chunked, and SSE
// responses can be read incrementally or abandoned mid-stream. Plus small MCP-over-HTTP helpers.
// Header-only; tests only.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace smcp::testing::http {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using Headers = std::vector<std::pair<std::string, std::string>>;
using namespace std::chrono_literals;

inline constexpr auto k_timeout = std::chrono::milliseconds(10000);
inline constexpr const char* k_accept_both = "application/json, text/event-stream";

inline std::string lower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

// ------------------------------------------------------------------ a raw HTTP/1.1 client

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers; // lower-case names
  std::string body;

  std::string header(const std::string& name) const {
    auto it = headers.find(lower(name));
    return it == headers.end() ? "" : it->second;
  }
  bool has_header(const std::string& name) const { return headers.count(lower(name)) > 0; }
  json json_body() const {
    try {
      return json::parse(body);
    } catch (const json::exception&) {
      return json();
    }
  }
  std::string error_message() const { return json_body().value("error", json::object()).value("message", ""); }
  int error_code() const { return json_body().value("error", json::object()).value("code", 0); }
};

struct SseEvent {
  std::string id;
  std::string data;
};

inline std::vector<SseEvent> parse_sse(const std::string& body) {
  std::vector<SseEvent> events;
  SseEvent current;
  bool any = false;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    if (line.empty()) {
      if (any) {
        events.push_back(current);
      }
      current = {};
      any = false;
    } else if (line.rfind("id:", 0) == 0) {
      current.id = line.substr(line.size() > 3 && line[3] == ' ' ? 4 : 3);
      any = true;
    } else if (line.rfind("data:", 0) == 0) {
      std::string d = line.substr(line.size() > 5 && line[5] == ' ' ? 6 : 5);
      current.data += current.data.empty() ? d : "\n" + d;
      any = true;
    } else if (line.rfind("event:", 0) == 0 || line.rfind("retry:", 0) == 0) {
      any = true;
    }
  }
  return events;
}

// The JSON-RPC messages of an answer, JSON or SSE.
inline std::vector<json> messages_of(const Response& r) {
  std::vector<json> out;
  if (r.header("Content-Type").find("text/event-stream") != std::string::npos) {
    for (const auto& e : parse_sse(r.body)) {
      if (!e.data.empty()) {
        out.push_back(json::parse(e.data));
      }
    }
  } else if (!r.body.empty()) {
    json j = json::parse(r.body);
    if (j.is_array()) {
      for (auto& m : j) {
        out.push_back(m);
      }
    } else {
      out.push_back(j);
    }
  }
  return out;
}

inline json response_with_id(const Response& r, const json& id) {
  for (const auto& m : messages_of(r)) {
    if (m.contains("id") && m["id"] == id && (m.contains("result") || m.contains("error"))) {
      return m;
    }
  }
  return json();
}

class Connection {
public:
  explicit Connection(int port) : m_port(port) {
    m_fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ADD_FAILURE() << "connect: " << std::strerror(errno);
    }
    int one = 1;
    ::setsockopt(m_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Connection() { close(); }

  void close() {
    if (m_fd >= 0) {
      ::close(m_fd);
      m_fd = -1;
    }
  }

  // The bytes of a request; Host defaults to 127.0.0.1:PORT unless `headers` has one. With
  // `chunked`, the body goes with Transfer-Encoding: chunked (in 64 KiB chunks) instead of
  // Content-Length.
  static std::string format(int port, const std::string& method, const std::string& target, const Headers& headers,
                            const std::string& body, bool chunked = false) {
    std::string req = method + " " + target + " HTTP/1.1\r\n";
    bool has_host = false;
    for (const auto& [k, v] : headers) {
      has_host = has_host || lower(k) == "host";
      req += k + ": " + v + "\r\n";
    }
    if (!has_host) {
      req += "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
    }
    if (chunked) {
      req += "Transfer-Encoding: chunked\r\n\r\n";
      for (std::size_t off = 0; off < body.size(); off += 65536) {
        std::size_t n = std::min<std::size_t>(65536, body.size() - off);
        std::ostringstream size;
        size << std::hex << n;
        req += size.str() + "\r\n" + body.substr(off, n) + "\r\n";
      }
      req += "0\r\n\r\n";
    } else {
      if (!body.empty() || method == "POST") {
        req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
      }
      req += "\r\n" + body;
    }
    return req;
  }

  // Sends a request (see format()).
  void send(const std::string& method, const std::string& target, const Headers& headers, const std::string& body,
            bool chunked = false) {
    send_raw(format(m_port, method, target, headers, body, chunked));
  }

  // Sends bytes as they are (several pipelined requests, a partial request, garbage). Returns
  // false when the connection refused them (e.g. the server closed it).
  bool send_raw(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(m_fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        return false; // the server may answer early and close; the answer is still readable
      }
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }

  // Status line and headers; the body is read with read_body / read_body_until.
  Response read_head(std::chrono::milliseconds timeout = k_timeout) {
    Response r;
    auto deadline = Clock::now() + timeout;
    std::size_t end;
    while ((end = m_buf.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(deadline)) {
        return r;
      }
    }
    std::istringstream head(m_buf.substr(0, end));
    m_buf.erase(0, end + 4);
    std::string line;
    std::getline(head, line);
    if (line.size() >= 12) {
      r.status = std::stoi(line.substr(9, 3));
    }
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') {
        line.pop_back();
      }
      auto colon = line.find(':');
      if (colon != std::string::npos) {
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        r.headers[lower(line.substr(0, colon))] = value;
      }
    }
    m_chunked = lower(r.header("Transfer-Encoding")) == "chunked";
    m_length_left = r.has_header("Content-Length") ? std::stoull(r.header("Content-Length")) : 0;
    const bool no_body = r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
    m_until_close = !no_body && !m_chunked && !r.has_header("Content-Length");
    m_body_done = !m_chunked && !m_until_close && m_length_left == 0;
    return r;
  }

  // Reads body bytes into `body` until `done(body)` holds, the body ends, or the timeout.
  // Returns true when `done` held.
  bool read_body_until(std::string& body, const std::function<bool(const std::string&)>& done,
                       std::chrono::milliseconds timeout = k_timeout) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
      decode(body);
      if (done(body)) {
        return true;
      }
      if (m_body_done || !fill(deadline)) {
        decode(body);
        return done(body);
      }
    }
  }

  bool body_done() const { return m_body_done; }

  Response read_response(std::chrono::milliseconds timeout = k_timeout) {
    Response r = read_head(timeout);
    if (r.status != 0) {
      read_body_until(
          r.body, [this](const std::string&) { return m_body_done; }, timeout);
    }
    return r;
  }

  // True when the server closed the connection within `timeout` (after draining what it sent).
  bool closed_by_peer(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (fill(deadline)) {
    }
    return m_eof;
  }

private:
  bool fill(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0 || m_fd < 0) {
      return false;
    }
    pollfd p{m_fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) {
      return false;
    }
    char buf[65536];
    ssize_t n = ::recv(m_fd, buf, sizeof buf, 0);
    if (n <= 0) {
      m_eof = true;
      if (m_until_close) {
        m_body_done = true;
      }
      return false;
    }
    m_buf.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  void decode(std::string& body) {
    if (m_body_done && !m_until_close) {
      return;
    }
    if (m_until_close) {
      body += m_buf;
      m_buf.clear();
      return;
    }
    if (!m_chunked) {
      std::size_t n = std::min<std::size_t>(m_length_left, m_buf.size());
      body += m_buf.substr(0, n);
      m_buf.erase(0, n);
      m_length_left -= n;
      m_body_done = m_length_left == 0;
      return;
    }
    for (;;) {
      auto crlf = m_buf.find("\r\n");
      if (crlf == std::string::npos) {
        return;
      }
      std::size_t size = std::stoul(m_buf.substr(0, crlf), nullptr, 16);
      if (size == 0) {
        if (m_buf.size() >= crlf + 4) {
          m_buf.erase(0, crlf + 4);
          m_body_done = true;
        }
        return;
      }
      if (m_buf.size() < crlf + 2 + size + 2) {
        return;
      }
      body += m_buf.substr(crlf + 2, size);
      m_buf.erase(0, crlf + 2 + size + 2);
    }
  }

  int m_port;
  int m_fd = -1;
  std::string m_buf;
  bool m_chunked = false;
  bool m_until_close = false;
  bool m_body_done = false;
  bool m_eof = false;
  std::size_t m_length_left = 0;
};

// ------------------------------------------------------------------ MCP over HTTP helpers

inline Headers mcp_headers(const std::string& session = "", Headers extra = {}) {
  Headers h = {{"Content-Type", "application/json"}, {"Accept", k_accept_both}};
  if (!session.empty()) {
    h.emplace_back("Mcp-Session-Id", session);
    h.emplace_back("MCP-Protocol-Version", "2025-11-25");
  }
  for (auto& [k, v] : extra) {
    bool replaced = false;
    for (auto& [hk, hv] : h) {
      if (lower(hk) == lower(k)) {
        hv = v;
        replaced = true;
      }
    }
    if (!replaced) {
      h.emplace_back(k, v);
    }
  }
  return h;
}

inline Response request(int port, const std::string& method, const Headers& headers, const std::string& body = "",
                        const std::string& target = "/mcp", bool chunked = false) {
  Connection c(port);
  c.send(method, target, headers, body, chunked);
  return c.read_response();
}

inline Response post(int port, const std::string& session, const json& message, Headers extra = {}) {
  return request(port, "POST", mcp_headers(session, std::move(extra)), message.dump());
}

inline json initialize_request(const std::string& version = "2025-11-25") {
  return {{"jsonrpc", "2.0"},
          {"id", 1},
          {"method", "initialize"},
          {"params",
           {{"protocolVersion", version},
            {"capabilities", json::object()},
            {"clientInfo", {{"name", "http-test"}, {"version", "1"}}}}}};
}

inline json tools_call(int id, const std::string& command, json meta = nullptr) {
  json params = {{"name", "remote_bash"}, {"arguments", {{"command", command}}}};
  if (!meta.is_null()) {
    params["_meta"] = meta;
  }
  return {{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/call"}, {"params", params}};
}

inline json tools_list(int id = 2) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/list"}};
}

// Initializes a session (and sends notifications/initialized); returns its id.
inline std::string open_session(int port, const std::string& version = "2025-11-25", Headers extra = {}) {
  Response r = request(port, "POST", mcp_headers("", extra), initialize_request(version).dump());
  EXPECT_EQ(r.status, 200) << r.body;
  std::string session = r.header("Mcp-Session-Id");
  EXPECT_FALSE(session.empty());
  Headers h = mcp_headers(session, extra);
  Response note = request(port, "POST", h, R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  EXPECT_EQ(note.status, 202) << note.body;
  return session;
}

// The server still serves: tools/list on `session` answers with the tools.
inline void expect_serving(int port, const std::string& session, Headers extra = {}) {
  Response r = post(port, session, tools_list(77), std::move(extra));
  ASSERT_EQ(r.status, 200) << r.body;
  json m = response_with_id(r, 77);
  ASSERT_TRUE(m.contains("result")) << r.body;
  EXPECT_FALSE(m["result"]["tools"].empty());
}

} // namespace smcp::testing::http
