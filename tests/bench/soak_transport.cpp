#include "soak_transport.h"

#include <poll.h>
#include <sstream>
#include <stdexcept>
#include <unistd.h>

namespace smcp::soak {

namespace {

bool answers(const json& m, const json& id) {
  return m.is_object() && !m.contains("method") && m.contains("id") && m["id"] == id;
}

} // namespace

StdioTransport::StdioTransport(const std::string& binary, const std::vector<std::string>& args, const std::string& log)
    : m_server(bench::spawn_stdio_server(binary, args, log)) {}

int StdioTransport::finish() {
  if (m_server.pid < 0) {
    return m_status;
  }
  m_status = bench::stop_stdio_server(m_server);
  return m_status;
}

json StdioTransport::exchange(const std::string& body, const json& id) {
  bench::write_all(m_server.in, body + "\n");
  if (id.is_discarded()) {
    return nullptr; // a notification
  }
  const auto deadline = Clock::now() + k_call_timeout;
  for (;;) {
    json m = json::parse(read_line(deadline));
    if (answers(m, id)) {
      return m;
    }
  }
}

std::string StdioTransport::read_line(Clock::time_point deadline) {
  const int out = ::fileno(m_server.out);
  for (;;) {
    if (auto nl = m_buf.find('\n'); nl != std::string::npos) {
      std::string line = m_buf.substr(0, nl);
      m_buf.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      throw Lost("no answer within " + std::to_string(k_call_timeout.count()) + " s");
    }
    pollfd p{out, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) {
      continue;
    }
    char buf[65536];
    ssize_t n = ::read(out, buf, sizeof buf);
    if (n <= 0) {
      throw std::runtime_error("the server closed its output");
    }
    m_buf.append(buf, static_cast<std::size_t>(n));
  }
}

HttpTransport::~HttpTransport() {
  if (!m_session.empty()) {
    try {
      m_http.post(m_session, "", "DELETE");
    } catch (const std::exception&) {
    }
  }
}

json HttpTransport::exchange(const std::string& body, const json& id) {
  auto r = m_http.post(m_session, body);
  if (id.is_discarded()) {
    return nullptr;
  }
  if (r.session.size() && m_session.empty()) {
    m_session = r.session;
  }
  if (r.sse) {
    std::istringstream lines(r.body);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("data:", 0) == 0) {
        json m = json::parse(line.substr(5), nullptr, false);
        if (answers(m, id)) {
          return m;
        }
      }
    }
    throw std::runtime_error("the SSE stream ended without the answer");
  }
  json m = json::parse(r.body, nullptr, false);
  if (!answers(m, id)) {
    throw std::runtime_error("HTTP " + std::to_string(r.status) + " without the answer: " + r.body.substr(0, 200));
  }
  return m;
}

} // namespace smcp::soak
