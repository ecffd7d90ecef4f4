// The MCP protocol core driven through an in-memory transport: lifecycle and version
// negotiation, JSON-RPC errors, batches, oversized input, and the stdio transport over pipes.
#include "tests/support/protocol_fixture.h"

#include <gtest/gtest.h>

#include "transport/stdio_transport.h"

#include <fcntl.h>
#include <set>
#include <thread>
#include <unistd.h>

namespace smcp::mcp {
namespace {

using namespace std::chrono_literals;
using testing::parse;
using testing::ProtocolTest;

TEST_F(ProtocolTest, InitializeNegotiatesRequestedSupportedVersion) {
  for (const char* v : {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}) {
    conn = std::make_unique<transport::MemoryConnection>(*server);
    json r = initialize(v);
    EXPECT_EQ(r["result"]["protocolVersion"], v);
    EXPECT_EQ(r["result"]["serverInfo"]["name"], "sandbox-mcp");
    EXPECT_EQ(r["result"]["serverInfo"]["version"], "9.9.9");
    EXPECT_EQ(r["result"]["instructions"], "use the tools");
    EXPECT_TRUE(r["result"]["capabilities"].contains("tools"));
    EXPECT_TRUE(r["result"]["capabilities"].contains("logging"));
  }
}

TEST_F(ProtocolTest, InitializeWithUnknownVersionAnswersLatest) {
  json r = initialize("1999-01-01");
  EXPECT_EQ(r["result"]["protocolVersion"], k_latest_protocol_version);
}

TEST_F(ProtocolTest, InitializeWithoutProtocolVersionIsInvalidParamsNamingIt) {
  json r =
      call({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"}, {"params", {{"capabilities", json::object()}}}});
  EXPECT_EQ(r["error"]["code"], error_code::invalid_params);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("protocolVersion"), std::string::npos);
  // The session is still usable: a proper initialize works afterwards.
  EXPECT_EQ(initialize()["result"]["protocolVersion"], "2025-11-25");
}

TEST_F(ProtocolTest, SecondInitializeIsRejected) {
  initialize();
  json r =
      call({{"jsonrpc", "2.0"}, {"id", 9}, {"method", "initialize"}, {"params", {{"protocolVersion", "2025-11-25"}}}});
  EXPECT_EQ(r["error"]["code"], error_code::invalid_request);
  EXPECT_EQ(r["id"], 9);
}

TEST_F(ProtocolTest, PingWorksBeforeInitializeButToolsDoNot) {
  expect_ping_works(1);
  json r = call({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/list"}});
  EXPECT_EQ(r["error"]["code"], error_code::invalid_request);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("initialize"), std::string::npos);
}

TEST_F(ProtocolTest, ParseErrorHasNullIdAndServerKeepsServing) {
  conn->send("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ");
  json r = parse(conn->next());
  EXPECT_EQ(r["error"]["code"], error_code::parse_error);
  EXPECT_TRUE(r["id"].is_null());
  conn->send("not json at all");
  EXPECT_EQ(parse(conn->next())["error"]["code"], error_code::parse_error);
  expect_ping_works();
}

// nlohmann::json throws out_of_range, not parse_error, for a number beyond a double's range: it
// must be answered as a parse error like any other input that is not JSON we can represent.
TEST_F(ProtocolTest, NumberTooLargeForADoubleIsAParseErrorNotACrash) {
  conn->send(R"({"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":1e400}})");
  json r = parse(conn->next());
  EXPECT_EQ(r["error"]["code"], error_code::parse_error);
  EXPECT_TRUE(r["id"].is_null());
  EXPECT_NE(r["error"]["message"].get<std::string>().find("number overflow"), std::string::npos)
      << r["error"]["message"];
  expect_ping_works();
}

TEST_F(ProtocolTest, DeeplyNestedJsonIsAParseErrorNotACrash) {
  std::string deep(100000, '[');
  deep += std::string(100000, ']');
  conn->send(deep);
  json r = parse(conn->next());
  EXPECT_EQ(r["error"]["code"], error_code::parse_error);
  expect_ping_works();
}

TEST_F(ProtocolTest, InvalidRequestsGetMinus32600) {
  struct Case {
    const char* raw;
    json id;
  };
  for (const Case& c : {Case{R"({"jsonrpc":"1.0","id":1,"method":"ping"})", 1}, Case{R"({"id":2,"method":"ping"})", 2},
                        Case{R"({"jsonrpc":"2.0","id":3})", 3}, Case{R"({"jsonrpc":"2.0","id":4,"method":42})", 4},
                        Case{R"({"jsonrpc":"2.0","id":null,"method":"ping"})", nullptr},
                        Case{R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})", nullptr},
                        Case{R"("just a string")", nullptr}, Case{R"(17)", nullptr}}) {
    conn->send(c.raw);
    json r = parse(conn->next());
    EXPECT_EQ(r["error"]["code"], error_code::invalid_request) << c.raw;
    EXPECT_EQ(r["id"], c.id) << c.raw;
  }
  expect_ping_works();
}

TEST_F(ProtocolTest, UnknownMethodIsMethodNotFoundNamingIt) {
  initialize();
  json r = call({{"jsonrpc", "2.0"}, {"id", "abc"}, {"method", "resources/teleport"}});
  EXPECT_EQ(r["error"]["code"], error_code::method_not_found);
  EXPECT_EQ(r["id"], "abc");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("resources/teleport"), std::string::npos);
}

TEST_F(ProtocolTest, NotificationsAndClientResponsesGetNoAnswer) {
  initialize();
  conn->send(R"({"jsonrpc":"2.0","method":"notifications/whatever","params":{}})");
  conn->send(R"({"jsonrpc":"2.0","id":77,"result":{}})");
  expect_ping_works(5);
  EXPECT_EQ(conn->pending(), 0u);
}

TEST_F(ProtocolTest, BatchesFollowTheNegotiatedVersion) {
  initialize("2025-03-26");
  conn->send(R"([{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"},
                 {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"b"}}}])");
  json r = parse(conn->next());
  ASSERT_TRUE(r.is_array()) << r;
  ASSERT_EQ(r.size(), 2u);
  std::set<int> ids{r[0]["id"].get<int>(), r[1]["id"].get<int>()};
  EXPECT_EQ(ids, (std::set<int>{1, 2}));
  // Notifications only: nothing comes back.
  conn->send(R"([{"jsonrpc":"2.0","method":"notifications/x"}])");
  expect_ping_works();
  conn->send("[]");
  EXPECT_EQ(parse(conn->next())["error"]["code"], error_code::invalid_request);

  auto other = std::make_unique<transport::MemoryConnection>(*server);
  std::swap(conn, other);
  initialize("2025-11-25");
  conn->send(R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])");
  json refused = parse(conn->next());
  EXPECT_EQ(refused["error"]["code"], error_code::invalid_request);
  EXPECT_NE(refused["error"]["message"].get<std::string>().find("2025-11-25"), std::string::npos);
}

TEST_F(ProtocolTest, EveryInboundMessageIsEndedOnce) {
  initialize();
  std::size_t before = conn->ends();
  call(tool_call(1, "echo", {{"text", "x"}}));
  conn->send(R"({"jsonrpc":"2.0","method":"notifications/x"})");
  expect_ping_works();
  // The tool call's end() follows its response on the worker thread.
  for (int i = 0; i < 500 && conn->ends() < before + 3; ++i) {
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_EQ(conn->ends(), before + 3);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(conn->ends(), before + 3) << "end() must be called exactly once per inbound message";
}

TEST_F(ProtocolTest, OversizedMessageIsRefusedClearly) {
  initialize();
  conn->send_oversized(10 * 1024 * 1024, 4 * 1024 * 1024);
  json r = parse(conn->next());
  EXPECT_EQ(r["error"]["code"], error_code::invalid_request);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("10485760"), std::string::npos);
  expect_ping_works();
}

// The stdio transport over real pipes: a 10 MB line is refused without buffering it, and the
// next message is still answered; EOF ends the transport cleanly.
TEST_F(ProtocolTest, StdioRefusesTenMegabyteLineAndKeepsServing) {
  int in[2], out[2];
  ASSERT_EQ(::pipe(in), 0);
  ASSERT_EQ(::pipe(out), 0);
  transport::StdioOptions options;
  options.in_fd = in[0];
  options.out_fd = out[1];
  int rc = -1;
  std::thread server_thread([&] {
    transport::StdioTransport t(options);
    rc = t.run(*server);
    ::close(out[1]);
  });
  std::thread writer([&] {
    std::string big =
        R"({"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":")" + std::string(10 * 1024 * 1024, 'x') + "\"}}\n";
    std::string rest = R"({"jsonrpc":"2.0","id":2,"method":"ping"})"
                       "\n";
    for (const std::string* s : {&big, &rest}) {
      const char* p = s->data();
      std::size_t left = s->size();
      while (left > 0) {
        ssize_t n = ::write(in[1], p, left);
        if (n <= 0) {
          break;
        }
        p += n;
        left -= static_cast<std::size_t>(n);
      }
    }
    ::close(in[1]);
  });
  std::string output;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) {
    output.append(buf, static_cast<std::size_t>(n));
  }
  writer.join();
  server_thread.join();
  ::close(in[0]);
  ::close(out[0]);
  EXPECT_EQ(rc, 0);
  auto nl = output.find('\n');
  ASSERT_NE(nl, std::string::npos) << output;
  json first = json::parse(output.substr(0, nl));
  json second = json::parse(output.substr(nl + 1));
  EXPECT_EQ(first["error"]["code"], error_code::invalid_request);
  EXPECT_NE(first["error"]["message"].get<std::string>().find("too large"), std::string::npos);
  EXPECT_EQ(second["id"], 2);
  EXPECT_EQ(second["result"], json::object());
}

} // namespace
} // namespace smcp::mcp
