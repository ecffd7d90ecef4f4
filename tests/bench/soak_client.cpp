#include "soak_client.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <map>
#include <stdexcept>
#include <thread>

namespace smcp::soak {

namespace {

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

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

} // namespace

void Stats::fail(Operation op, const std::string& what) {
  std::lock_guard lock(m);
  ++failures[op];
  if (first_failures.size() < 20) {
    first_failures.push_back(std::string(k_op_names[op]) + ": " + what);
  }
}

void Stats::record(Operation op, double ms) {
  std::lock_guard lock(m);
  latency[op].push_back(ms);
}

void Stats::count_call() {
  std::lock_guard lock(m);
  ++calls;
}

void Stats::count_lost() {
  std::lock_guard lock(m);
  ++lost;
}

bool Stats::check_lines(const std::vector<std::string>& expected, const std::vector<std::string>& got) {
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
  std::lock_guard lock(m);
  lines += static_cast<long>(expected.size());
  lines_lost += lost;
  lines_repeated += repeated;
  return lost == 0 && repeated == 0 && expected == got;
}

Client::Client(std::unique_ptr<Transport> transport, unsigned seed, Stats& stats, std::string work)
    : m_transport(std::move(transport)), m_stats(stats), m_work(std::move(work)), m_rng(seed) {
  request("initialize", {{"protocolVersion", "2025-11-25"},
                         {"capabilities", json::object()},
                         {"clientInfo", {{"name", "soak"}, {"version", "1"}}}});
  m_transport->exchange(R"({"jsonrpc":"2.0","method":"notifications/initialized"})", json(json::value_t::discarded));
}

void Client::run(Clock::time_point end) {
  std::discrete_distribution<int> pick(std::begin(k_op_weights), std::end(k_op_weights));
  while (Clock::now() < end) {
    Operation op = static_cast<Operation>(pick(m_rng));
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
      m_stats.record(op, ms_since(t0));
    } catch (const Lost& e) {
      m_stats.count_lost();
      m_stats.fail(op, std::string("LOST: ") + e.what());
      return; // the connection's state is unknown now
    } catch (const std::exception& e) {
      m_stats.fail(op, e.what());
    }
  }
}

json Client::request(const std::string& method, const json& params) {
  int id = ++m_id;
  json m = raw(json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}.dump(), id);
  if (m.contains("error")) {
    throw std::runtime_error(method + ": " + m["error"].dump());
  }
  return m["result"];
}

json Client::call(const std::string& tool, const json& args) {
  json r = request("tools/call", {{"name", tool}, {"arguments", args}});
  if (r.value("isError", false)) {
    throw std::runtime_error(tool + ": " + r["content"][0].value("text", std::string()));
  }
  return r["structuredContent"];
}

void Client::do_foreground() {
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
    if (r.value("truncated", true) || !m_stats.check_lines(expected, split_lines(r.value("stdout", "")))) {
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
  if (!m_stats.check_lines(expected, got)) {
    throw std::runtime_error("the full output file is not 1..12000");
  }
  remove(r["bash_id"]);
}

void Client::do_job(bool with_filter) {
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
  if (!m_stats.check_lines(expected, split_lines(all))) {
    throw std::runtime_error(std::string(with_filter ? "filtered " : "") + "output of " + std::to_string(n) +
                             " lines is not exact");
  }
  remove(id);
}

void Client::do_file_window() {
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
  json w = call("remote_file_read", {{"file_path", m_work + "/lines.txt"}, {"offset", offset}, {"limit", limit}});
  long last = std::min<long>(first + limit - 1, k_file_lines);
  std::vector<std::string> expected, got;
  for (long i = first; i <= last; ++i) {
    char num[32];
    std::snprintf(num, sizeof num, "%6ld\t", i);
    expected.push_back(num + ("line " + std::to_string(i)));
  }
  got = split_lines(w.value("content", ""));
  if (!m_stats.check_lines(expected, got) || w.value("start_line", 0L) != first) {
    throw std::runtime_error("window at " + std::to_string(offset) + " is wrong");
  }
}

void Client::do_kill() {
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

json Client::raw(const std::string& body, const json& id) {
  m_stats.count_call();
  return m_transport->exchange(body, id);
}

void Client::do_malformed() {
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
    answer =
        raw(json{{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/call"}, {"params", {{"name", "nope"}}}}.dump(), id);
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
    answer = raw(json{{"jsonrpc", "2.0"},
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

} // namespace smcp::soak
