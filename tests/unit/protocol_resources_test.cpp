// Resources through the protocol core: list, templates, read, subscribe and notify, and a slow
// provider that must not block the connection.
#include "tests/support/protocol_fixture.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

namespace smcp::mcp {
namespace {

using namespace std::chrono_literals;
using testing::parse;
using testing::Probe;

class FakeResources : public ResourceProvider {
public:
  json list() override { return json::array({{{"uri", "job://a/output"}, {"name", "a"}}}); }
  json templates() override { return json::array({{{"uriTemplate", "job://{id}/output"}, {"name", "t"}}}); }
  std::optional<json> read(const std::string& uri) override {
    if (uri != "job://a/output") {
      return std::nullopt;
    }
    return json::array({{{"uri", uri}, {"mimeType", "text/plain"}, {"text", "hello"}}});
  }
};

class SlowResources : public FakeResources {
public:
  json list() override {
    std::unique_lock lock(m);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return released; });
    return FakeResources::list();
  }
  void release() {
    {
      std::lock_guard lock(m);
      released = true;
    }
    cv.notify_all();
  }
  std::mutex m;
  std::condition_variable cv;
  bool released = false;
};

TEST(ProtocolResources, ASlowResourceListDoesNotBlockTheConnection) {
  Probe probe;
  auto slow = std::make_shared<SlowResources>();
  auto server = std::make_shared<Server>(ServerOptions{}, testing::protocol_test_registry(probe), slow);
  transport::MemoryConnection c(*server);
  c.send(R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}})");
  parse(c.next());
  c.send(R"({"jsonrpc":"2.0","id":1,"method":"resources/list"})"); // blocks in the provider
  c.send(R"({"jsonrpc":"2.0","id":2,"method":"ping"})");
  json first = parse(c.next(std::chrono::seconds(2)));
  EXPECT_EQ(first["id"], 2) << "the ping must not wait behind resources/list";
  slow->release();
  EXPECT_EQ(parse(c.next())["id"], 1);
}

TEST(ProtocolResources, ListReadSubscribeAndNotify) {
  Probe probe;
  auto server = std::make_shared<Server>(ServerOptions{}, testing::protocol_test_registry(probe),
                                         std::make_shared<FakeResources>());
  transport::MemoryConnection a(*server), b(*server);
  for (auto* c : {&a, &b}) {
    c->send(R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}})");
    json init = parse(c->next());
    EXPECT_EQ(init["result"]["capabilities"]["resources"]["subscribe"], true);
  }
  a.send(R"({"jsonrpc":"2.0","id":1,"method":"resources/list"})");
  EXPECT_EQ(parse(a.next())["result"]["resources"][0]["uri"], "job://a/output");
  a.send(R"({"jsonrpc":"2.0","id":2,"method":"resources/templates/list"})");
  EXPECT_EQ(parse(a.next())["result"]["resourceTemplates"][0]["uriTemplate"], "job://{id}/output");
  a.send(R"({"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"job://a/output"}})");
  EXPECT_EQ(parse(a.next())["result"]["contents"][0]["text"], "hello");
  a.send(R"({"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"job://zzz/output"}})");
  json missing = parse(a.next());
  EXPECT_EQ(missing["error"]["code"], error_code::resource_not_found);
  EXPECT_NE(missing["error"]["message"].get<std::string>().find("job://zzz/output"), std::string::npos);
  a.send(R"({"jsonrpc":"2.0","id":5,"method":"resources/read","params":{}})");
  EXPECT_EQ(parse(a.next())["error"]["code"], error_code::invalid_params);

  a.send(R"({"jsonrpc":"2.0","id":6,"method":"resources/subscribe","params":{"uri":"job://a/output"}})");
  EXPECT_EQ(parse(a.next())["result"], json::object());
  server->notify_resource_updated("job://a/output");
  server->notify_resource_updated("job://other/output");
  json note = parse(a.next());
  EXPECT_EQ(note["method"], "notifications/resources/updated");
  EXPECT_EQ(note["params"]["uri"], "job://a/output");
  EXPECT_FALSE(a.next(std::chrono::milliseconds(100)).has_value()) << "only subscribed URIs are notified";
  EXPECT_FALSE(b.next(std::chrono::milliseconds(100)).has_value()) << "b never subscribed";

  a.send(R"({"jsonrpc":"2.0","id":7,"method":"resources/unsubscribe","params":{"uri":"job://a/output"}})");
  EXPECT_EQ(parse(a.next())["result"], json::object());
  server->notify_resource_updated("job://a/output");
  EXPECT_FALSE(a.next(std::chrono::milliseconds(100)).has_value());
}

} // namespace
} // namespace smcp::mcp
