// The real binary serving Streamable HTTP (`sandbox-mcp serve --http 127.0.0.1:0` with a fresh
// --state-dir) as a child process, for the integration tests of the HTTP transport: its port (read
// from its log), its output, SIGTERM and the exit code. Header-only; needs SMCP_BINARY (defined for
// integration_tests).
#pragma once

#include "tests/support/raw_http.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace smcp::testing::http {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class HttpServerProcess {
public:
  // `args` follow `serve`; --http 127.0.0.1:0 and a fresh --state-dir are added unless given.
  explicit HttpServerProcess(std::vector<std::string> args = {}, std::vector<std::string> env = {}, bool wait = true) {
    char tmpl[] = "/tmp/smcp-http-test.XXXXXX";
    m_dir = ::mkdtemp(tmpl);
    std::vector<std::string> argv = {SMCP_BINARY, "serve", "--state-dir", m_dir + "/state", "--log-level", "debug"};
    if (std::find(args.begin(), args.end(), "--http") == args.end()) {
      argv.insert(argv.end(), {"--http", "127.0.0.1:0"});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    m_pid = ::fork();
    if (m_pid == 0) {
      int err = ::open((m_dir + "/stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int out = ::open((m_dir + "/stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int in = ::open("/dev/null", O_RDONLY);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::unsetenv("SANDBOX_MCP_HTTP_TOKEN");
      for (const auto& e : env) {
        ::putenv(const_cast<char*>(e.c_str()));
      }
      std::vector<char*> cargv;
      for (auto& a : argv) {
        cargv.push_back(a.data());
      }
      cargv.push_back(nullptr);
      ::execv(SMCP_BINARY, cargv.data());
      ::_exit(127);
    }
    if (!wait) {
      return;
    }
    const std::regex listening("listening on http://[^ ]*:([0-9]+)/mcp");
    auto deadline = Clock::now() + k_timeout;
    while (Clock::now() < deadline) {
      std::smatch m;
      std::string log = stderr_text();
      if (std::regex_search(log, m, listening)) {
        m_port = std::stoi(m[1]);
        return;
      }
      if (!alive()) {
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "server did not start; stderr:\n" << stderr_text();
  }

  ~HttpServerProcess() {
    if (m_pid > 0 && alive()) {
      ::kill(m_pid, SIGTERM);
      wait_exit(10s);
      if (alive()) {
        ::kill(m_pid, SIGKILL);
      }
    }
    if (m_pid > 0 && m_exit_code < 0) {
      int status = 0;
      ::waitpid(m_pid, &status, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(m_dir, ec);
  }

  int port() const { return m_port; }
  pid_t pid() const { return m_pid; }
  std::string stderr_text() const { return read_file(m_dir + "/stderr"); }
  std::string stdout_text() const { return read_file(m_dir + "/stdout"); }
  const std::string& dir() const { return m_dir; }

  bool alive() {
    if (m_exit_code >= 0) {
      return false;
    }
    int status = 0;
    pid_t r = ::waitpid(m_pid, &status, WNOHANG);
    if (r == m_pid) {
      m_exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return false;
    }
    return true;
  }

  // SIGTERM, then the exit code (-1 if still running after `timeout`).
  int terminate(std::chrono::milliseconds timeout) {
    if (alive()) {
      ::kill(m_pid, SIGTERM);
    }
    return wait_exit(timeout);
  }

  // Exit code, or -1 if still running after `timeout`.
  int wait_exit(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (alive() && Clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
    }
    return m_exit_code;
  }

private:
  std::string m_dir;
  pid_t m_pid = -1;
  int m_port = 0;
  int m_exit_code = -1;
};

} // namespace smcp::testing::http
