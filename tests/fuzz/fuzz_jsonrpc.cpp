// Fuzzes JSON-RPC message handling end to end: the protocol core (framing, batches, lifecycle,
// ids, cancellation, logging, resources) with the real tools, their schemas and handlers, over a
// FakeHost (no process is ever started) and an in-memory SQLite store, through the in-memory
// transport. Each input is one client session: messages separated by newlines, sent one after
// another. `@@` in a message is replaced by the newest bash_id the server returned, so reads,
// kills and resources of real jobs are reachable.
//
// Checked besides crashes and sanitizer reports: every message the server sends is valid JSON,
// and every inbound message is fully answered exactly once (MessageSink::end()). The server and
// its jobs outlive one input (see below): a crash that needs the jobs of earlier inputs may not
// replay from its input alone; run the fuzzer on the whole corpus directory then.
#include "mcp-server/core/protocol.h"
#include "mcp-server/store/state_store.h"
#include "tests/support/fake_host.h"
#include "tests/support/test_tools.h"
#include "tools/job_resources.h"
#include "tools/tools.h"
#include "transport/memory_transport.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;
using namespace smcp;

void check(bool ok) {
  if (!ok) {
    __builtin_trap();
  }
}

std::string g_spill_dir;

struct Env {
  std::shared_ptr<testing::FakeHost> host = std::make_shared<testing::FakeHost>("fake");
  tools::HostRegistry hosts;
  std::unique_ptr<state::StateStore> store = state::open_sqlite_store(":memory:");
  std::unique_ptr<tools::JobManager> jobs;
  std::shared_ptr<mcp::ToolRegistry> registry = std::make_shared<mcp::ToolRegistry>();
  std::unique_ptr<tools::ToolEnv> env;
  std::shared_ptr<mcp::Server> server;

  Env() {
    hosts.add(host);
    hosts.set_default("fake");
    host->run_output = {{exec::Stream::out, "hello\nepoch 1 loss 0.5\n"}, {exec::Stream::err, "warning\n"}};
    host->file_window.lines = {"first", "second"};
    tools::JobOptions options = testing::quick_job_options(g_spill_dir);
    options.max_output_chars = 200;
    options.poll_interval = 2ms;
    options.sweep_interval = 20ms;
    options.kill_grace = 5ms;
    options.progress_interval = 5ms;
    options.heartbeat_interval = 10ms;
    jobs = std::make_unique<tools::JobManager>(hosts, *store, options);
    env = std::make_unique<tools::ToolEnv>(tools::ToolEnv{hosts, *jobs, *store});
    tools::register_tools(*registry, *env);
    mcp::ServerOptions server_options;
    server_options.version = "fuzz";
    server_options.close_grace = 5s;
    server = std::make_shared<mcp::Server>(server_options, registry, tools::make_job_resources(*jobs));
    std::weak_ptr<mcp::Server> weak = server;
    jobs->set_change_listener([weak](const std::string& id) {
      if (auto s = weak.lock()) {
        s->notify_resource_updated(tools::job_resource_uri(id));
      }
    });
  }
  ~Env() {
    server->wait_idle(5s);
    jobs.reset(); // stops its threads before the server goes
  }
};

// Takes every message the server has sent so far: each must be JSON; remembers the newest bash_id.
void drain(transport::MemoryConnection& conn, std::string& bash_id) {
  while (auto raw = conn.next(0ms)) {
    auto message = mcp::json::parse(*raw, nullptr, false);
    check(!message.is_discarded());
    if (auto pos = raw->find("\"bash_id\":\""); pos != std::string::npos) {
      auto start = pos + 11;
      auto end = raw->find('"', start);
      if (end != std::string::npos && end - start < 64) {
        bash_id = raw->substr(start, end - start);
      }
    }
  }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  g_spill_dir = (std::filesystem::temp_directory_path() / ("smcp-fuzz-jsonrpc-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(g_spill_dir);
  std::atexit([] { std::filesystem::remove_all(g_spill_dir); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // Building the server and its tools costs far more than most inputs: one Env serves a few
  // hundred inputs (each in its own session), then starts afresh so jobs do not pile up.
  static std::unique_ptr<Env> shared;
  static unsigned uses = 0;
  if (!shared || ++uses % 256 == 0) {
    shared.reset();
    shared = std::make_unique<Env>();
  }
  Env& env = *shared;
  std::size_t sent = 0;
  std::string bash_id = "none";
  {
    transport::MemoryConnection conn(*env.server);
    while (!input.empty()) {
      auto nl = input.find('\n');
      std::string message(input.substr(0, nl));
      input.remove_prefix(nl == std::string_view::npos ? input.size() : nl + 1);
      for (auto at = message.find("@@"); at != std::string::npos; at = message.find("@@", at + bash_id.size())) {
        message.replace(at, 2, bash_id);
      }
      conn.send(message);
      ++sent;
      // Let the answer come (tool calls run on worker threads) so the next message can use it.
      for (int i = 0; i < 500 && conn.ends() < sent; ++i) {
        std::this_thread::sleep_for(100us);
      }
      drain(conn, bash_id);
    }
    conn.close();
    drain(conn, bash_id);
    check(conn.ends() == sent);
  }
  return 0;
}
