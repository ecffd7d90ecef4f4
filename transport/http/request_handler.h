// Internal to transport/ (the Streamable HTTP transport): what the server answers to a complete
// request. Runs on worker threads; knows nothing of sockets (transport/http/connection.h writes the
// answer).
#pragma once

#include "transport/http/response.h"
#include "transport/http/session_table.h"
#include "transport/http_request.h"
#include "transport/http_transport.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace smcp::transport::http {

class RequestHandler {
public:
  // `stopping`: the server is shutting down (waiting answers give up).
  RequestHandler(const HttpOptions& options, EndpointFactory& factory, SessionTable& sessions,
                 const std::atomic<bool>& stopping);

  void handle(const Request& req, Response& res);

  // The admission handle() applies, on the head alone (endpoint, method, Host, Origin, token), for
  // the connection to run before it reads a body (only for requests that have one: OPTIONS and
  // GET /healthz, answered without a token, are refused with one). Thread-safe (reads only the
  // configuration).
  bool admit_head(const Request& head, Response& res);

private:
  // Checks. Each sets the rejection in `res` and returns false (or null) when the request may not
  // proceed.
  bool at_endpoint(const Request& req, Response& res) const;
  bool admit(const Request& req, Response& res, bool authenticate);
  bool check_protocol_version(const Request& req, Response& res) const;
  // The 405 answer (handle() and admit_head() give the same one).
  void method_not_allowed(Response& res) const;
  std::shared_ptr<HttpSession> find_session(const Request& req, Response& res);

  void handle_with_body(const Request& req, Response& res);
  void handle_post(const Request& req, Response& res);
  void answer_oversized(const Request& req, Response& res);
  void handle_get(const Request& req, Response& res);
  void resume_stream(const Request& req, Response& res, const std::shared_ptr<HttpSession>& session);
  void handle_delete(const Request& req, Response& res);
  void handle_options(const Request& req, Response& res);

  void initialize(const Request& req, Response& res, const Accepts& accepts);
  void deliver(const std::shared_ptr<HttpSession>& session, const std::string& body, const Accepts& accepts,
               Response& res);

  static void respond_json(Response& res, std::vector<std::string>& messages);
  // An SSE answer carrying `messages`, then ending.
  void respond_sse(Response& res, const std::shared_ptr<HttpSession>& session, std::vector<std::string>& messages);
  void respond_sse(Response& res, const std::shared_ptr<HttpSession>& session, const std::shared_ptr<SseStream>& stream,
                   std::uint64_t cursor, bool hold_open);

  const HttpOptions& m_options;
  EndpointFactory& m_factory;
  SessionTable& m_sessions;
  const std::atomic<bool>& m_stopping;
  bool m_bound_to_loopback = true;
  std::set<std::string> m_allowed_origins;
  std::set<std::string> m_allowed_hosts;
  std::atomic<std::size_t> m_open_streams{0};
};

} // namespace smcp::transport::http
