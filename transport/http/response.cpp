#include "transport/http/response.h"

#include "transport/http/jsonrpc.h"
#include "transport/http/text.h"

#include <algorithm>
#include <cstdio>

namespace smcp::transport::http {

namespace {

// The reason phrases of the statuses this server sends (RFC 9110 wording).
std::string reason_phrase(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 200:
    return "OK";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 406:
    return "Not Acceptable";
  case 408:
    return "Request Timeout";
  case 413:
    return "Payload Too Large";
  case 415:
    return "Unsupported Media Type";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 503:
    return "Service Unavailable";
  default:
    return "Unknown";
  }
}

std::string header_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c != '\r' && c != '\n') {
      out += c;
    }
  }
  return out;
}

} // namespace

void Response::set_header(const std::string& name, std::string value) {
  for (auto& [k, v] : headers) {
    if (iequals(k, name)) {
      v = std::move(value);
      return;
    }
  }
  headers.emplace_back(name, std::move(value));
}

bool Response::has_header(const std::string& name) const {
  return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return iequals(h.first, name); });
}

void set_error(Response& res, int status, int code, const std::string& message) {
  res.status = status;
  res.set_content(error_message(code, message), "application/json");
}

std::string serialize_head(const Response& res, bool chunked, bool keep_alive, unsigned version) {
  std::string out = "HTTP/1.1 " + std::to_string(res.status) + " " + reason_phrase(res.status) + "\r\n";
  for (const auto& [k, v] : res.headers) {
    out += k + ": " + header_value(v) + "\r\n";
  }
  if (res.sse) {
    out += "Content-Type: text/event-stream\r\n";
    if (chunked) {
      out += "Transfer-Encoding: chunked\r\n";
    }
  } else {
    if (!res.content_type.empty()) {
      out += "Content-Type: " + res.content_type + "\r\n";
    }
    if (res.status != 204 && res.status != 304) {
      out += "Content-Length: " + std::to_string(res.body.size()) + "\r\n";
    }
  }
  if (!keep_alive) {
    out += "Connection: close\r\n";
  } else if (version == 10) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  return out;
}

std::string serialize(const Response& res, bool keep_alive, unsigned version) {
  return serialize_head(res, false, keep_alive, version) + res.body;
}

std::string chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string out(size);
  out.append(data);
  out += "\r\n";
  return out;
}

} // namespace smcp::transport::http
