// main() of the test binaries: sets up logging the way the server does (stderr, before any thread
// runs, so spdlog's registry is never first created by two threads at once), then runs the tests.
#include <gtest/gtest.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN); // as in the server: a closed pipe is an error return, not death
  spdlog::set_default_logger(spdlog::stderr_color_mt("tests"));
  const char* level = std::getenv("SANDBOX_MCP_LOG_LEVEL");
  spdlog::set_level(spdlog::level::from_str(level ? level : "info"));
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
