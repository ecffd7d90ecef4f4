// Internal to transport/ (the Streamable HTTP transport): the JSON-RPC error messages the transport
// itself writes. The request-body functions of http_request.h (classify_body, request_ids,
// response_id, is_error_without_id) are implemented in jsonrpc.cpp too.
#pragma once

#include <string>
#include <string_view>

namespace smcp::transport::http {

// JSON-RPC codes of transport-level errors (the reference SDK uses the same).
constexpr int k_code_transport = -32000;
constexpr int k_code_session_not_found = -32001;
constexpr int k_code_parse_error = -32700;
constexpr int k_code_invalid_request = -32600;

// A serialized JSON-RPC error response; `id_json` is the request id as serialized JSON.
std::string error_message(int code, const std::string& message, std::string_view id_json = "null");

} // namespace smcp::transport::http
