// The pure header checks of http_request.h: Accept, Content-Type, Host, Origin, bearer token,
// MCP-Protocol-Version, Mcp-Session-Id, Last-Event-ID. No I/O, no Boost.
#include "transport/http_request.h"

#include "transport/http/text.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

namespace smcp::transport::http {

std::string ParsedRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) {
      return v;
    }
  }
  return "";
}

bool ParsedRequest::has_header(std::string_view name) const {
  return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return iequals(h.first, name); });
}

namespace {

// The comma-separated list items of every line of header `name`, trimmed and lower-cased (empty
// items kept: "chunked," is malformed).
std::vector<std::string> list_items(const std::vector<std::pair<std::string, std::string>>& headers,
                                    std::string_view name) {
  std::vector<std::string> items;
  for (const auto& [k, v] : headers) {
    if (!iequals(k, name)) {
      continue;
    }
    std::string_view rest = v;
    while (true) {
      const auto comma = rest.find(',');
      items.push_back(lower(trim(rest.substr(0, comma))));
      if (comma == std::string_view::npos) {
        break;
      }
      rest.remove_prefix(comma + 1);
    }
  }
  return items;
}

std::size_t count_lines(const std::vector<std::pair<std::string, std::string>>& headers, std::string_view name) {
  return static_cast<std::size_t>(
      std::count_if(headers.begin(), headers.end(), [&](const auto& h) { return iequals(h.first, name); }));
}

std::optional<HeadProblem> check_framing(unsigned version,
                                         const std::vector<std::pair<std::string, std::string>>& headers) {
  const std::vector<std::string> codings = list_items(headers, "Transfer-Encoding");
  if (count_lines(headers, "Content-Length") > 1) {
    return HeadProblem{400, "Bad Request: Content-Length is repeated (send it once)"};
  }
  if (count_lines(headers, "Transfer-Encoding") == 0) {
    return std::nullopt;
  }
  if (version < 11) {
    return HeadProblem{400, "Bad Request: Transfer-Encoding is not allowed in an HTTP/1.0 request (RFC 9112 "
                            "section 6.1); send Content-Length"};
  }
  if (count_lines(headers, "Content-Length") > 0) {
    return HeadProblem{400, "Bad Request: a request may not carry both Transfer-Encoding and Content-Length "
                            "(RFC 9112 section 6.3); send one of them"};
  }
  if (codings.empty() || codings.back() != "chunked" ||
      std::count(codings.begin(), codings.end(), std::string("chunked")) != 1) {
    return HeadProblem{400, "Bad Request: Transfer-Encoding must end in 'chunked', once (RFC 9112 section 6.3); "
                            "this server reads request bodies with Content-Length or 'Transfer-Encoding: chunked'"};
  }
  if (codings.size() != 1) {
    return HeadProblem{501, "Not Implemented: the only transfer coding this server reads is 'chunked' (got '" +
                                codings.front().substr(0, 40) + "')"};
  }
  return std::nullopt;
}

} // namespace

std::optional<HeadProblem> check_head(unsigned version,
                                      const std::vector<std::pair<std::string, std::string>>& headers) {
  if (auto framing = check_framing(version, headers)) {
    return framing;
  }
  const std::size_t hosts = count_lines(headers, "Host");
  if (hosts > 1 || (hosts == 0 && version >= 11)) {
    return HeadProblem{400, hosts > 1 ? "Bad Request: the Host header is repeated (RFC 9112 section 3.2)"
                                      : "Bad Request: an HTTP/1.1 request must carry a Host header (RFC 9112 "
                                        "section 3.2)"};
  }
  for (const char* name :
       {"Origin", "Authorization", "Mcp-Session-Id", "MCP-Protocol-Version", "Last-Event-ID", "Content-Type"}) {
    if (count_lines(headers, name) > 1) {
      return HeadProblem{400, std::string("Bad Request: the ") + name + " header is repeated; send it once"};
    }
  }
  return std::nullopt;
}

std::string target_path(std::string_view target) {
  if (target.empty() || target.front() != '/') {
    return "";
  }
  return std::string(target.substr(0, target.find_first_of("?#")));
}

Accepts parse_accept(std::optional<std::string_view> header_value) {
  if (!header_value) {
    return {true, true};
  }
  Accepts a;
  std::string header = lower(*header_value);
  std::size_t start = 0;
  while (start <= header.size()) {
    std::size_t comma = header.find(',', start);
    std::string_view item(header.data() + start, (comma == std::string::npos ? header.size() : comma) - start);
    start = comma == std::string::npos ? header.size() + 1 : comma + 1;
    std::size_t semi = item.find(';');
    std::string_view media = trim(item.substr(0, semi));
    bool excluded = false;
    while (semi != std::string_view::npos) {
      std::size_t next = item.find(';', semi + 1);
      std::string_view param = trim(item.substr(semi + 1, next == std::string_view::npos ? next : next - semi - 1));
      if (param.size() >= 2 && param.substr(0, 2) == "q=") {
        std::string_view q = param.substr(2);
        excluded = !q.empty() && q.find_first_not_of("0.") == std::string_view::npos;
      }
      semi = next;
    }
    if (excluded) {
      continue;
    }
    if (media == "*/*") {
      a.json = a.sse = true;
    } else if (media == "application/*" || media == "application/json") {
      a.json = true;
    } else if (media == "text/*" || media == "text/event-stream") {
      a.sse = true;
    }
  }
  return a;
}

bool is_json_content_type(std::string_view content_type) {
  std::string type = lower(content_type);
  return trim(std::string_view(type).substr(0, type.find(';'))) == "application/json";
}

std::string authority_name(std::string_view authority) {
  std::string_view name = authority, port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return "";
    }
    name = authority.substr(0, close + 1);
    port = authority.substr(close + 1);
  } else if (auto colon = authority.find(':'); colon != std::string_view::npos) {
    name = authority.substr(0, colon);
    port = authority.substr(colon);
  }
  if (!port.empty() &&
      (port.front() != ':' || port.size() > 6 || port.find_first_not_of("0123456789", 1) != std::string_view::npos)) {
    return "";
  }
  return lower(name);
}

bool is_loopback_name(std::string_view name) {
  if (name == "localhost" || name == "[::1]" || name == "::1") {
    return true;
  }
  // 127.0.0.0/8 as a dotted quad.
  if (name.substr(0, 4) != "127.") {
    return false;
  }
  int dots = 0;
  for (char c : name) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return dots == 3;
}

bool host_allowed(std::string_view host, const std::set<std::string>& allowed, bool bound_to_loopback) {
  if (host.empty()) {
    return false;
  }
  const std::string name = authority_name(host);
  if (is_loopback_name(name)) {
    return true;
  }
  if (allowed.count(lower(host)) || (!name.empty() && allowed.count(name))) {
    return true;
  }
  // Beyond loopback every request carries the token; without --allow-host any name is served.
  return !bound_to_loopback && allowed.empty();
}

bool origin_allowed(std::string_view origin, const std::set<std::string>& allowed) {
  std::string o = lower(origin);
  while (!o.empty() && o.back() == '/') {
    o.pop_back();
  }
  if (allowed.count(o)) {
    return true;
  }
  for (const char* scheme : {"http://", "https://"}) {
    std::string_view prefix(scheme);
    if (o.rfind(prefix, 0) == 0) {
      std::string_view authority = std::string_view(o).substr(prefix.size());
      if (authority.find_first_of("/@") != std::string_view::npos) {
        return false;
      }
      return is_loopback_name(authority_name(authority));
    }
  }
  return false; // "null", other schemes
}

bool constant_time_equal(std::string_view presented, std::string_view expected) {
  unsigned char diff = presented.size() == expected.size() ? 0 : 1;
  if (expected.empty()) {
    return false;
  }
  for (std::size_t i = 0; i < presented.size(); ++i) {
    diff |= static_cast<unsigned char>(presented[i] ^ expected[i % expected.size()]);
  }
  return diff == 0;
}

std::optional<std::string> bearer_token(std::string_view authorization) {
  if (authorization.size() <= 7 || !iequals(authorization.substr(0, 7), "bearer ")) {
    return std::nullopt;
  }
  return std::string(trim(authorization.substr(7)));
}

bool looks_like_version(std::string_view v) {
  if (v.size() != 10 || v[4] != '-' || v[7] != '-') {
    return false;
  }
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i != 4 && i != 7 && !std::isdigit(static_cast<unsigned char>(v[i]))) {
      return false;
    }
  }
  return true;
}

bool plausible_session_id(std::string_view id) {
  return id.size() == 2 * session_id_bytes && id.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_last_event_id(std::string_view id) {
  auto dash = id.find('-');
  if (dash == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view a = id.substr(0, dash), b = id.substr(dash + 1);
  auto number = [](std::string_view s) -> std::optional<std::uint64_t> {
    if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string_view::npos) {
      return std::nullopt;
    }
    return std::stoull(std::string(s));
  };
  auto x = number(a), y = number(b);
  if (!x || !y) {
    return std::nullopt;
  }
  return std::make_pair(*x, *y);
}

} // namespace smcp::transport::http
