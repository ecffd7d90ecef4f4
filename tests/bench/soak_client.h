// One soak client (soak.cpp): a random mix of calls over a Transport, every answer and every
// output line checked, counted into the shared Stats.
#pragma once

#include "soak_transport.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

namespace smcp::soak {

constexpr int k_file_lines = 200000;

// The operations a client picks from, with their names and weights.
enum Operation { foreground, job, filtered, file_window, kill_job, malformed, op_count };
const char* const k_op_names[] = {"foreground", "job", "filtered", "file window", "kill", "malformed"};
const int k_op_weights[] = {30, 20, 15, 20, 10, 5};

// What every client counts, shared (thread-safe).
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

  void fail(Operation op, const std::string& what);
  void record(Operation op, double ms);
  void count_call();
  void count_lost();
  // Counts lines of `expected` missing from `got` and lines of `got` seen more than once; true
  // when `got` is exactly `expected`.
  bool check_lines(const std::vector<std::string>& expected, const std::vector<std::string>& got);
};

class Client {
public:
  // `work`: the folder with lines.txt (k_file_lines numbered lines).
  Client(std::unique_ptr<Transport> transport, unsigned seed, Stats& stats, std::string work);

  // Runs random operations until `end`, or until a call is lost.
  void run(Clock::time_point end);

private:
  // The result of a request; throws on an error answer.
  json request(const std::string& method, const json& params);

  json call(const std::string& tool, const json& args);

  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(m_rng); }

  void remove(const std::string& bash_id) { call("remote_bash_kill", {{"bash_id", bash_id}, {"remove", true}}); }

  void do_foreground();

  void do_job(bool with_filter);

  void do_file_window();

  void do_kill();

  // The answer with a null id for raw input (parse error), or the error of a request.
  json raw(const std::string& body, const json& id);

  void do_malformed();

  std::unique_ptr<Transport> m_transport;
  Stats& m_stats;
  std::string m_work;
  std::mt19937 m_rng;
  int m_id = 0;
};

} // namespace smcp::soak
