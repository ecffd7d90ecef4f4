// What the protocol core refuses before a tool runs, through the in-memory transport: NUL
// characters in arguments, integers that would be rounded, malformed progress tokens, and
// subscriptions to resources that do not exist.
#include "mcp-server/core/json_schema.h"
#include "mcp-server/core/protocol.h"
#include "transport/memory_transport.h"

#include <gtest/gtest.h>

#include <atomic>

namespace smcp::mcp {
namespace {

using namespace std::string_literals;

json parse(const std::optional<std::string>& raw) {
  EXPECT_TRUE(raw.has_value()) << "expected a message from the server";
  return raw ? json::parse(*raw) : json();
}

class OneResource : public ResourceProvider {
public:
  json list() override { return json::array({{{"uri", "job://a/output"}, {"name", "a"}}}); }
  json templates() override { return json::array(); }
  std::optional<json> read(const std::string& uri) override {
    if (uri != "job://a/output") {
      return std::nullopt;
    }
    return json::array({{{"uri", uri}, {"text", "hello"}}});
  }
};

class InputValidation : public ::testing::Test {
protected:
  void SetUp() override {
    auto reg = std::make_shared<ToolRegistry>();
    Tool record;
    record.name = "record";
    record.description = "Records its arguments";
    record.input_schema = json::parse(R"({"type":"object","properties":{"text":{"type":"string"},
        "n":{"type":"integer"},"env":{"type":"object","additionalProperties":{"type":"string"}}},
        "additionalProperties":false})");
    record.handler = [this](const json& args, ToolContext& ctx) {
      ++runs;
      return ToolResult::ok({{"args", args}, {"progress", ctx.wants_progress()}});
    };
    reg->add(record);
    server = std::make_shared<Server>(ServerOptions{}, reg, std::make_shared<OneResource>());
    conn = std::make_unique<transport::MemoryConnection>(*server);
    conn->send(R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}})");
    parse(conn->next());
    conn->send(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  }

  json request(const json& message) {
    conn->send(message.dump());
    return parse(conn->next());
  }
  json record(const json& args, const json& meta = nullptr) {
    json params = {{"name", "record"}, {"arguments", args}};
    if (!meta.is_null()) {
      params["_meta"] = meta;
    }
    return request({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/call"}, {"params", params}});
  }

  std::atomic<int> runs{0};
  std::shared_ptr<Server> server;
  std::unique_ptr<transport::MemoryConnection> conn;
};

void expect_invalid(const json& r, const std::string& words) {
  ASSERT_TRUE(r.contains("error")) << "accepted: " << r.dump();
  EXPECT_EQ(r["error"]["code"], error_code::invalid_params);
  EXPECT_NE(r["error"]["message"].get<std::string>().find(words), std::string::npos) << r.dump();
}

TEST_F(InputValidation, NulInAnyStringOrKeyIsRefusedNamingTheField) {
  expect_invalid(record({{"text", "ls -d /\0tmp"s}}), "'text' contains a NUL character");
  expect_invalid(record({{"env", {{"X", "a\0b"s}}}}), "'env.X' contains a NUL character");
  expect_invalid(record({{"env", {{"A\0B"s, "1"}}}}), "'env' has a key containing a NUL character");
  EXPECT_EQ(runs, 0) << "the tool ran with a NUL argument";
  json ok = record({{"text", "no nul"}, {"env", {{"X", "y"}}}});
  EXPECT_EQ(ok["result"]["structuredContent"]["args"]["text"], "no nul");
}

TEST_F(InputValidation, IntegersThatWouldBeRoundedAreRefused) {
  expect_invalid(record({{"n", 9223372036854775807LL}}), "'n' must be an integer between -9007199254740991");
  expect_invalid(record({{"n", 1e300}}), "'n' must be an integer between");
  EXPECT_EQ(runs, 0);
  json ok = record({{"n", 9007199254740991LL}});
  EXPECT_EQ(ok["result"]["structuredContent"]["args"]["n"], 9007199254740991LL) << ok.dump();
}

TEST(JsonSchemaIntegers, OnlyExactlyRepresentableIntegersAreIntegers) {
  json schema =
      json::parse(R"({"type":"object","properties":{"i":{"type":["integer","null"]},"x":{"type":"number"}}})");
  auto err = [&](const json& v) { return validate_json(schema, v, "").value_or("(valid)"); };
  EXPECT_EQ(err({{"i", 9007199254740991LL}}), "(valid)");
  EXPECT_EQ(err({{"i", -9007199254740991LL}}), "(valid)");
  EXPECT_NE(err({{"i", 9007199254740992LL}}).find("'i' must be an integer between"), std::string::npos);
  EXPECT_NE(err({{"i", -9007199254740992LL}}).find("'i' must be an integer between"), std::string::npos);
  EXPECT_NE(err({{"i", 18446744073709551615ULL}}).find("'i' must be an integer between"), std::string::npos);
  EXPECT_NE(err({{"i", 1e16}}).find("'i' must be an integer between"), std::string::npos);
  EXPECT_EQ(err({{"x", 1e300}}), "(valid)") << "numbers are not integers: no such bound";
}

TEST(JsonSchemaAlternatives, EmptyAnyOfOrOneOfMatchesNothing) {
  // An empty list of alternatives is allowed by no value (and must not crash the validator).
  for (const char* keyword : {"anyOf", "oneOf"}) {
    json schema = {{keyword, json::array()}};
    EXPECT_EQ(validate_json(schema, json(1), "x").value_or("(valid)"), "'x' matches none of the alternatives")
        << keyword;
  }
  json one_of = json::parse(R"({"oneOf":[{"type":"integer"},{"type":"number"}]})");
  EXPECT_EQ(validate_json(one_of, json(1), "x").value_or("(valid)"), "'x' matches more than one alternative");
  EXPECT_EQ(validate_json(one_of, json(1.5), "x").value_or("(valid)"), "(valid)");
}

TEST_F(InputValidation, ProgressTokenMustBeAStringOrAnInteger) {
  for (const json& token : {json::object({{"a", 1}}), json(1.5), json(true), json(nullptr), json::array()}) {
    expect_invalid(record(json::object(), {{"progressToken", token}}), "'_meta.progressToken' must be a string");
  }
  EXPECT_EQ(runs, 0);
  for (const json& token : {json("tok"), json(7)}) {
    json r = record(json::object(), {{"progressToken", token}});
    EXPECT_EQ(r["result"]["structuredContent"]["progress"], true) << r.dump();
  }
}

TEST_F(InputValidation, SubscribingToAnUnknownResourceIsNotFound) {
  json r =
      request(R"({"jsonrpc":"2.0","id":5,"method":"resources/subscribe","params":{"uri":"job://zzz/output"}})"_json);
  ASSERT_TRUE(r.contains("error")) << r.dump();
  EXPECT_EQ(r["error"]["code"], error_code::resource_not_found);
  EXPECT_EQ(r["error"]["data"]["uri"], "job://zzz/output");
  // Nothing was subscribed: a change of that URI sends nothing.
  server->notify_resource_updated("job://zzz/output");
  EXPECT_FALSE(conn->next(std::chrono::milliseconds(100)).has_value());
  r = request(R"({"jsonrpc":"2.0","id":6,"method":"resources/subscribe","params":{"uri":"job://a/output"}})"_json);
  EXPECT_EQ(r["result"], json::object()) << r.dump();
}

} // namespace
} // namespace smcp::mcp
