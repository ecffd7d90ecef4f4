// Soak benchmark (tests/bench/soak.sh): CLIENTS clients for SECONDS, half over stdio (each with its
// own `sandbox-mcp serve` process), half over Streamable HTTP (sessions on one `serve --http`
// server), each running a random mix of calls one after another:
//   foreground   remote_bash `seq 1 N`; stdout must be exactly 1..N (1 in 8 is over the output cap:
//                then the full output file is read back with remote_file_read and checked line by line)
//   job          a background job printing L1..LN, followed with waiting reads (wait_ms) until it
//                ends; the concatenated output must be exactly L1..LN
//   filtered     the same with filter "7$|DONE" and until "DONE": exactly the matching lines
//   file window  remote_file_read of a random window of a 200,000-line file; each line checked
//   kill         a background job killed with TERM: status killed, verified
//   malformed    invalid JSON, unknown method/tool, bad arguments: the right error, then a ping
// Every job is removed after its check. Every call must get its answer (else it is counted lost);
// every line must arrive exactly once. The servers' RSS, open fds and threads are sampled every 5 s.
//   soak BINARY WORKDIR SECONDS CLIENTS
#include "http_head.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <poll.h>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int k_file_lines = 200000;
constexpr auto k_call_timeout = 120s;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// ---- transports ----

// No answer within the call timeout: the call is lost.
struct Lost : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Transport {
public:
  virtual ~Transport() = default;
  // Sends one message and returns the answer carrying `id` (notifications are skipped); for
  // malformed input, the error answer with a null id.
  virtual json exchange(const std::string& body, const json& id) = 0;
};

bool answers(const json& m, const json& id) {
  return m.is_object() && !m.contains("method") && m.contains("id") && m["id"] == id;
}

class StdioTransport final : public Transport {
public:
  StdioTransport(const std::string& binary, const std::vector<std::string>& args, const std::string& log) {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
      throw std::runtime_error("pipe");
    }
    m_pid = ::fork();
    if (m_pid == 0) {
      ::dup2(to_child[0], 0);
      ::dup2(from_child[1], 1);
      int err = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      ::dup2(err, 2);
      std::vector<char*> argv{const_cast<char*>(binary.c_str())};
      for (const auto& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
      }
      argv.push_back(nullptr);
      ::execv(binary.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    m_in = to_child[1];
    m_out = from_child[0];
  }
  ~StdioTransport() override { finish(); }

  // Closes the server's input and returns its exit status.
  int finish() {
    if (m_pid < 0) {
      return m_status;
    }
    ::close(m_in);
    ::close(m_out);
    ::waitpid(m_pid, &m_status, 0);
    m_pid = -1;
    return m_status;
  }
  pid_t pid() const { return m_pid; }

  json exchange(const std::string& body, const json& id) override {
    std::string line = body + "\n";
    for (std::size_t sent = 0; sent < line.size();) {
      ssize_t n = ::write(m_in, line.data() + sent, line.size() - sent);
      if (n <= 0) {
        throw std::runtime_error("the server closed its input");
      }
      sent += static_cast<std::size_t>(n);
    }
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

private:
  std::string read_line(Clock::time_point deadline) {
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
      pollfd p{m_out, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) {
        continue;
      }
      char buf[65536];
      ssize_t n = ::read(m_out, buf, sizeof buf);
      if (n <= 0) {
        throw std::runtime_error("the server closed its output");
      }
      m_buf.append(buf, static_cast<std::size_t>(n));
    }
  }

  pid_t m_pid = -1;
  int m_in = -1;
  int m_out = -1;
  int m_status = -1;
  std::string m_buf;
};

class HttpTransport final : public Transport {
public:
  explicit HttpTransport(int port) : m_port(port) {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
    }
    int one = 1;
    ::setsockopt(m_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~HttpTransport() override {
    if (!m_session.empty()) {
      try {
        post("", "DELETE");
      } catch (const std::exception&) {
      }
    }
    ::close(m_fd);
  }

  json exchange(const std::string& body, const json& id) override {
    auto r = post(body, "POST");
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

private:
  struct Response {
    int status = 0;
    bool sse = false;
    std::string session;
    std::string body;
  };

  Response post(const std::string& body, const char* method) {
    std::string req = std::string(method) + " /mcp HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(m_port) +
                      "\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n";
    if (!m_session.empty()) {
      req += "Mcp-Session-Id: " + m_session + "\r\nMCP-Protocol-Version: 2025-11-25\r\n";
    }
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    for (std::size_t sent = 0; sent < req.size();) {
      ssize_t n = ::send(m_fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        throw std::runtime_error("send failed");
      }
      sent += static_cast<std::size_t>(n);
    }
    return read_response(Clock::now() + k_call_timeout);
  }

  void fill(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{m_fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
      throw Lost("no answer within " + std::to_string(k_call_timeout.count()) + " s");
    }
    char buf[65536];
    ssize_t n = ::recv(m_fd, buf, sizeof buf, 0);
    if (n <= 0) {
      throw std::runtime_error("connection closed");
    }
    m_buf.append(buf, static_cast<std::size_t>(n));
  }

  Response read_response(Clock::time_point deadline) {
    Response r;
    std::size_t end;
    while ((end = m_buf.find("\r\n\r\n")) == std::string::npos) {
      fill(deadline);
    }
    std::string head = m_buf.substr(0, end);
    m_buf.erase(0, end + 4);
    const auto h = smcp::bench::parse_response_head(head);
    r.status = h.status;
    r.session = h.session;
    r.sse = h.sse;
    const std::size_t length = h.length;
    const bool chunked = h.chunked;
    if (!chunked) {
      while (m_buf.size() < length) {
        fill(deadline);
      }
      r.body = m_buf.substr(0, length);
      m_buf.erase(0, length);
      return r;
    }
    for (;;) {
      std::size_t crlf;
      while ((crlf = m_buf.find("\r\n")) == std::string::npos) {
        fill(deadline);
      }
      std::size_t size = std::stoul(m_buf.substr(0, crlf), nullptr, 16);
      while (m_buf.size() < crlf + 2 + size + 2) {
        fill(deadline);
      }
      r.body += m_buf.substr(crlf + 2, size);
      m_buf.erase(0, crlf + 2 + size + 2);
      if (size == 0) {
        return r;
      }
    }
  }

  int m_port;
  int m_fd = -1;
  std::string m_session;
  std::string m_buf;
};

// ---- statistics ----

enum Op { foreground, job, filtered, file_window, kill_job, malformed, op_count };
const char* const k_op_names[] = {"foreground", "job", "filtered", "file window", "kill", "malformed"};
const int k_op_weights[] = {30, 20, 15, 20, 10, 5};

struct Stats {
  std::mutex m;
  std::vector<double> latency[op_count];
  long failures[op_count] = {};
  long calls = 0; // MCP requests sent
  long lost = 0;  // requests without an answer
  long lines = 0; // output lines checked
  long lines_lost = 0;
  long lines_repeated = 0;
  std::vector<std::string> first_failures;

  void fail(Op op, const std::string& what) {
    std::lock_guard lock(m);
    ++failures[op];
    if (first_failures.size() < 20) {
      first_failures.push_back(std::string(k_op_names[op]) + ": " + what);
    }
  }
};

Stats g_stats;
std::string g_work;

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    out.push_back(text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    pos = nl == std::string::npos ? text.size() : nl + 1;
  }
  return out;
}

// Counts lines of `expected` missing from `got` and lines of `got` seen more than once.
bool check_lines(const std::vector<std::string>& expected, const std::vector<std::string>& got) {
  std::map<std::string, int> seen;
  for (const auto& l : got) {
    ++seen[l];
  }
  long lost = 0, repeated = 0;
  for (const auto& l : expected) {
    auto it = seen.find(l);
    if (it == seen.end() || it->second == 0) {
      ++lost;
    } else {
      repeated += it->second - 1;
      it->second = 0;
    }
  }
  std::lock_guard lock(g_stats.m);
  g_stats.lines += static_cast<long>(expected.size());
  g_stats.lines_lost += lost;
  g_stats.lines_repeated += repeated;
  return lost == 0 && repeated == 0 && expected == got;
}

// ---- one client ----

class Client {
public:
  Client(std::unique_ptr<Transport> transport, unsigned seed) : m_t(std::move(transport)), m_rng(seed) {
    request("initialize", {{"protocolVersion", "2025-11-25"},
                           {"capabilities", json::object()},
                           {"clientInfo", {{"name", "soak"}, {"version", "1"}}}});
    m_t->exchange(R"({"jsonrpc":"2.0","method":"notifications/initialized"})", json(json::value_t::discarded));
  }

  void run(Clock::time_point end) {
    std::discrete_distribution<int> pick(std::begin(k_op_weights), std::end(k_op_weights));
    while (Clock::now() < end) {
      Op op = static_cast<Op>(pick(m_rng));
      auto t0 = Clock::now();
      try {
        switch (op) {
        case foreground:
          do_foreground();
          break;
        case job:
          do_job(false);
          break;
        case filtered:
          do_job(true);
          break;
        case file_window:
          do_file_window();
          break;
        case kill_job:
          do_kill();
          break;
        case malformed:
          do_malformed();
          break;
        default:
          break;
        }
        std::lock_guard lock(g_stats.m);
        g_stats.latency[op].push_back(ms_since(t0));
      } catch (const Lost& e) {
        {
          std::lock_guard lock(g_stats.m);
          ++g_stats.lost;
        }
        g_stats.fail(op, std::string("LOST: ") + e.what());
        return; // the connection's state is unknown now
      } catch (const std::exception& e) {
        g_stats.fail(op, e.what());
      }
    }
  }

private:
  json request(const std::string& method, const json& params) {
    int id = ++m_id;
    {
      std::lock_guard lock(g_stats.m);
      ++g_stats.calls;
    }
    json m = m_t->exchange(json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}.dump(), id);
    if (m.contains("error")) {
      throw std::runtime_error(method + ": " + m["error"].dump());
    }
    return m["result"];
  }

  json call(const std::string& tool, const json& args) {
    json r = request("tools/call", {{"name", tool}, {"arguments", args}});
    if (r.value("isError", false)) {
      throw std::runtime_error(tool + ": " + r["content"][0].value("text", std::string()));
    }
    return r["structuredContent"];
  }

  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(m_rng); }

  void remove(const std::string& bash_id) { call("remote_bash_kill", {{"bash_id", bash_id}, {"remove", true}}); }

  void do_foreground() {
    const bool big = uniform(0, 7) == 0;
    const int n = big ? 12000 : uniform(1, 3000);
    json r = call("remote_bash", {{"command", "seq 1 " + std::to_string(n)}});
    std::vector<std::string> expected;
    for (int i = 1; i <= n; ++i) {
      expected.push_back(std::to_string(i));
    }
    if (r.value("exit_code", -1) != 0) {
      throw std::runtime_error("exit_code " + r.dump().substr(0, 300));
    }
    if (!big) {
      if (r.value("truncated", true) || !check_lines(expected, split_lines(r.value("stdout", "")))) {
        throw std::runtime_error("stdout is not 1.." + std::to_string(n));
      }
      return;
    }
    // Over the cap: cut in the middle, the full output kept; read it back in one window.
    if (!r.value("truncated", false) || !r.contains("full_output") || !r.contains("bash_id")) {
      throw std::runtime_error("12000 lines were not cut with full_output + bash_id: " + r.dump().substr(0, 300));
    }
    json w = call("remote_file_read", {{"file_path", r["full_output"]}, {"limit", n}});
    std::vector<std::string> got;
    for (const auto& line : split_lines(w.value("content", ""))) {
      auto tab = line.find('\t');
      got.push_back(tab == std::string::npos ? line : line.substr(tab + 1));
    }
    if (!check_lines(expected, got)) {
      throw std::runtime_error("the full output file is not 1..12000");
    }
    remove(r["bash_id"]);
  }

  void do_job(bool with_filter) {
    const int n = uniform(100, 3000);
    std::string command =
        "for i in $(seq 1 " + std::to_string(n) + "); do echo L$i; case $i in *00) sleep 0.05;; esac; done; echo DONE";
    json started = call("remote_bash", {{"command", command}, {"run_in_background", true}});
    std::string id = started.value("bash_id", "");
    if (id.empty()) {
      throw std::runtime_error("no bash_id: " + started.dump());
    }
    std::vector<std::string> expected;
    for (int i = 1; i <= n; ++i) {
      if (!with_filter || i % 10 == 7) {
        expected.push_back("L" + std::to_string(i));
      }
    }
    expected.push_back("DONE");
    json args = {{"bash_id", id}, {"wait_ms", 5000}};
    if (with_filter) {
      args["filter"] = "7$|DONE";
      args["until"] = "DONE";
    }
    std::string all;
    for (int reads = 0;; ++reads) {
      json r = call("remote_bash_output", args);
      if (r.value("truncated", false) || r.value("dropped_bytes", 0) != 0) {
        throw std::runtime_error("a read was cut: " + r.dump().substr(0, 300));
      }
      all += r.value("output", "");
      const std::string status = r.value("status", "");
      if (status != "running") {
        if (status != "exited" || r.value("exit_code", -1) != 0) {
          throw std::runtime_error("job ended " + status);
        }
        break;
      }
      if (reads > 1000) {
        throw std::runtime_error("the job did not end");
      }
    }
    if (!check_lines(expected, split_lines(all))) {
      throw std::runtime_error(std::string(with_filter ? "filtered " : "") + "output of " + std::to_string(n) +
                               " lines is not exact");
    }
    remove(id);
  }

  void do_file_window() {
    long offset;
    int limit = uniform(1, 500);
    long first;
    if (uniform(0, 1)) {
      offset = uniform(1, k_file_lines);
      first = offset;
    } else {
      offset = -uniform(1, 500);
      limit = static_cast<int>(-offset);
      first = k_file_lines + offset + 1;
    }
    json w = call("remote_file_read", {{"file_path", g_work + "/lines.txt"}, {"offset", offset}, {"limit", limit}});
    long last = std::min<long>(first + limit - 1, k_file_lines);
    std::vector<std::string> expected, got;
    for (long i = first; i <= last; ++i) {
      char num[32];
      std::snprintf(num, sizeof num, "%6ld\t", i);
      expected.push_back(num + ("line " + std::to_string(i)));
    }
    got = split_lines(w.value("content", ""));
    if (!check_lines(expected, got) || w.value("start_line", 0L) != first) {
      throw std::runtime_error("window at " + std::to_string(offset) + " is wrong");
    }
  }

  void do_kill() {
    json started =
        call("remote_bash", {{"command", "while :; do echo tick; sleep 0.2; done"}, {"run_in_background", true}});
    std::string id = started.value("bash_id", "");
    std::this_thread::sleep_for(std::chrono::milliseconds(uniform(0, 500)));
    json k = call("remote_bash_kill", {{"bash_id", id}, {"signal", "TERM"}});
    if (k.value("status", "") != "killed" || !k.value("verified", false)) {
      throw std::runtime_error("kill: " + k.dump().substr(0, 300));
    }
    remove(id);
  }

  // The answer with a null id for raw input (parse error), or the error of a request.
  json raw(const std::string& body, const json& id) {
    {
      std::lock_guard lock(g_stats.m);
      ++g_stats.calls;
    }
    return m_t->exchange(body, id);
  }

  void do_malformed() {
    int id = ++m_id;
    json answer;
    int expected_code = 0;
    switch (uniform(0, 4)) {
    case 0:
      answer = raw("{\"jsonrpc\":\"2.0\",\"id\":" + std::to_string(id) + ",\"method\":", nullptr);
      expected_code = -32700;
      break;
    case 1:
      answer = raw(json{{"jsonrpc", "2.0"}, {"id", id}, {"method", "no/such/method"}}.dump(), id);
      expected_code = -32601;
      break;
    case 2:
      answer = raw(
          json{{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/call"}, {"params", {{"name", "nope"}}}}.dump(), id);
      expected_code = -32602;
      break;
    case 3:
      answer = raw(json{{"jsonrpc", "2.0"},
                        {"id", id},
                        {"method", "tools/call"},
                        {"params", {{"name", "remote_bash"}, {"arguments", {{"command", 42}}}}}}
                       .dump(),
                   id);
      expected_code = -32602;
      break;
    default:
      answer =
          raw(json{{"jsonrpc", "2.0"},
                   {"id", id},
                   {"method", "tools/call"},
                   {"params", {{"name", "remote_bash_output"}, {"arguments", {{"bash_id", "x"}, {"filter", "("}}}}}}
                  .dump(),
              id);
      expected_code = -32602;
    }
    if (!answer.contains("error") || answer["error"].value("code", 0) != expected_code) {
      throw std::runtime_error("expected error " + std::to_string(expected_code) + ", got " +
                               answer.dump().substr(0, 300));
    }
    request("ping", json::object()); // still serving
  }

  std::unique_ptr<Transport> m_t;
  std::mt19937 m_rng;
  int m_id = 0;
};

// ---- server processes and sampling ----

struct Sample {
  double t = 0;
  long rss_kib = 0;
  int fds = 0;
  int threads = 0;
};

long status_field(pid_t pid, const char* field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::size_t len = std::strlen(field);
  while (std::getline(status, line)) {
    if (line.compare(0, len, field) == 0) {
      return std::stol(line.substr(len));
    }
  }
  return -1;
}

int fd_count(pid_t pid) {
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) {
    return -1;
  }
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    n += e->d_name[0] != '.';
  }
  ::closedir(d);
  return n;
}

Sample sample(pid_t pid, double t) {
  return Sample{t, status_field(pid, "VmRSS:"), fd_count(pid), static_cast<int>(status_field(pid, "Threads:"))};
}

std::vector<std::string> serve_args(const std::string& state, const char* log_level = "warn") {
  return {"serve", "--state-dir", state, "--log-level", log_level};
}

void report_series(const char* name, const std::vector<Sample>& s, double seconds) {
  if (s.empty()) {
    return;
  }
  // Warm-up: the first minute (or the first fifth of a short run); compared with the last minute.
  const double window = std::min(60.0, seconds / 5);
  long rss_max = 0;
  int fds_max = 0, threads_max = 0;
  for (const auto& x : s) {
    rss_max = std::max(rss_max, x.rss_kib);
    fds_max = std::max(fds_max, x.fds);
    threads_max = std::max(threads_max, x.threads);
  }
  auto mean = [&](double from, double to, auto get) {
    double sum = 0;
    int n = 0;
    for (const auto& x : s) {
      if (x.t >= from && x.t <= to) {
        sum += get(x);
        ++n;
      }
    }
    return n ? sum / n : 0.0;
  };
  auto rss = [](const Sample& x) { return static_cast<double>(x.rss_kib) / 1024.0; };
  auto fds = [](const Sample& x) { return static_cast<double>(x.fds); };
  auto thr = [](const Sample& x) { return static_cast<double>(x.threads); };
  const double r1 = mean(window, 2 * window, rss), r2 = mean(seconds - window, seconds, rss);
  std::printf("%-22s RSS MiB: %6.1f after warm-up, %6.1f at the end, %6.1f max | fds: %4.0f, %4.0f, %4d max | "
              "threads: %3.0f, %3.0f, %3d max\n",
              name, r1, r2, static_cast<double>(rss_max) / 1024.0, mean(window, 2 * window, fds),
              mean(seconds - window, seconds, fds), fds_max, mean(window, 2 * window, thr),
              mean(seconds - window, seconds, thr), threads_max);
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::cerr << "usage: soak BINARY WORKDIR SECONDS CLIENTS\n";
    return 2;
  }
  const std::string binary = argv[1];
  g_work = argv[2];
  const double seconds = std::stod(argv[3]);
  const int clients = std::max(2, std::stoi(argv[4]));
  const int stdio_clients = clients / 2;
  const int http_clients = clients - stdio_clients;
  std::signal(SIGPIPE, SIG_IGN);

  {
    std::ofstream f(g_work + "/lines.txt");
    for (int i = 1; i <= k_file_lines; ++i) {
      f << "line " << i << '\n';
    }
  }

  // The HTTP server.
  pid_t http_pid = ::fork();
  const std::string http_log = g_work + "/http-server.log";
  if (http_pid == 0) {
    int err = ::open(http_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(err, 2);
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    auto args = serve_args(g_work + "/http-state", "info"); // info: the line with the port
    args.insert(args.end(), {"--http", "127.0.0.1:0"});
    std::vector<char*> av{const_cast<char*>(binary.c_str())};
    for (auto& a : args) {
      av.push_back(a.data());
    }
    av.push_back(nullptr);
    ::execv(binary.c_str(), av.data());
    ::_exit(127);
  }
  int port = 0;
  for (int i = 0; i < 200 && !port; ++i) {
    std::this_thread::sleep_for(50ms);
    std::ifstream log(http_log);
    std::string line;
    while (std::getline(log, line)) {
      if (auto at = line.find("listening on http://127.0.0.1:"); at != std::string::npos) {
        port = std::atoi(line.c_str() + at + 30);
      }
    }
  }
  if (!port) {
    std::cerr << "the HTTP server did not start; see " << http_log << "\n";
    return 1;
  }

  std::vector<StdioTransport*> stdio;
  std::vector<std::unique_ptr<Client>> all;
  for (int i = 0; i < stdio_clients; ++i) {
    auto t = std::make_unique<StdioTransport>(binary, serve_args(g_work + "/stdio-state-" + std::to_string(i)),
                                              g_work + "/stdio-server-" + std::to_string(i) + ".log");
    stdio.push_back(t.get());
    all.push_back(std::make_unique<Client>(std::move(t), 1000 + i));
  }
  for (int i = 0; i < http_clients; ++i) {
    all.push_back(std::make_unique<Client>(std::make_unique<HttpTransport>(port), 2000 + i));
  }
  std::printf("soak: %.0f s, %d clients (%d stdio, each with its own server; %d HTTP sessions on one server, port %d), "
              "%u cores\n",
              seconds, clients, stdio_clients, http_clients, port, std::thread::hardware_concurrency());
  std::fflush(stdout);

  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<Sample> http_samples;
  std::vector<std::vector<Sample>> stdio_samples(stdio.size());
  std::atomic<bool> sampling{true};
  std::thread sampler([&] {
    while (sampling) {
      double t = ms_since(start) / 1000.0;
      http_samples.push_back(sample(http_pid, t));
      for (std::size_t i = 0; i < stdio.size(); ++i) {
        stdio_samples[i].push_back(sample(stdio[i]->pid(), t));
      }
      for (int i = 0; i < 50 && sampling; ++i) {
        std::this_thread::sleep_for(100ms);
      }
    }
  });
  std::vector<std::thread> threads;
  for (auto& c : all) {
    threads.emplace_back([&c, end] { c->run(end); });
  }
  for (auto& t : threads) {
    t.join();
  }
  const double elapsed = ms_since(start) / 1000.0;
  sampling = false;
  sampler.join();

  std::printf("%-12s %8s %8s %9s %9s %9s\n", "operation", "done", "failed", "p50 ms", "p99 ms", "max ms");
  long total_failures = 0;
  for (int op = 0; op < op_count; ++op) {
    auto& v = g_stats.latency[op];
    std::sort(v.begin(), v.end());
    auto pct = [&](double p) {
      return v.empty() ? 0.0 : v[std::min(v.size() - 1, static_cast<std::size_t>(p / 100 * (v.size() - 1) + 0.5))];
    };
    std::printf("%-12s %8zu %8ld %9.1f %9.1f %9.1f\n", k_op_names[op], v.size(), g_stats.failures[op], pct(50), pct(99),
                v.empty() ? 0.0 : v.back());
    total_failures += g_stats.failures[op];
  }
  std::printf("MCP requests: %ld, lost (no answer in %ld s): %ld\n", g_stats.calls,
              static_cast<long>(k_call_timeout.count()), g_stats.lost);
  std::printf("output lines checked: %ld, lost: %ld, repeated: %ld\n", g_stats.lines, g_stats.lines_lost,
              g_stats.lines_repeated);
  report_series("HTTP server", http_samples, elapsed);
  for (std::size_t i = 0; i < stdio_samples.size(); ++i) {
    report_series(("stdio server " + std::to_string(i)).c_str(), stdio_samples[i], elapsed);
  }
  for (const auto& f : g_stats.first_failures) {
    std::printf("failure: %s\n", f.c_str());
  }

  // Stdio servers see the end of their input and must exit 0; HTTP sessions are deleted.
  int bad_exits = 0;
  for (std::size_t i = 0; i < stdio.size(); ++i) {
    int status = stdio[i]->finish();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ++bad_exits;
      std::printf("stdio server %zu ended with status %d\n", i, status);
    }
  }
  all.clear();
  ::kill(http_pid, SIGTERM);
  int st = 0;
  ::waitpid(http_pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    ++bad_exits;
    std::printf("the HTTP server ended with status %d\n", st);
  }
  std::printf("result: %s\n", total_failures == 0 && g_stats.lost == 0 && g_stats.lines_lost == 0 &&
                                      g_stats.lines_repeated == 0 && bad_exits == 0
                                  ? "OK"
                                  : "FAILURES (see above)");
  return total_failures == 0 && g_stats.lost == 0 && bad_exits == 0 ? 0 : 1;
}
