// logging/setLevel, resources (job outputs, when a provider is configured: list, templates, read,
// subscribe, unsubscribe) and prompts (none are offered; the empty list lets clients that
// enumerate them at connect time proceed).
#include "mcp-server/core/session.h"

namespace smcp::mcp::detail {

namespace {

json resource_not_found(const json& id, const std::string& uri) {
  return make_error(id, error_code::resource_not_found,
                    "Resource not found: " + uri +
                        " (resources are job outputs: job://BASH_ID/output; see resources/list)",
                    {{"uri", uri}});
}

} // namespace

void Session::handle_set_level(const Request& r) {
  auto level_it = r.params.find("level");
  if (level_it == r.params.end() || !level_it->is_string()) {
    r.error(error_code::invalid_params, "Invalid params: missing string field 'level' (one of debug, info, notice, "
                                        "warning, error, critical, alert, emergency)");
    return;
  }
  auto level = parse_log_level(level_it->get<std::string>());
  if (!level) {
    r.error(error_code::invalid_params, "Invalid params: 'level' must be one of debug, info, notice, warning, "
                                        "error, critical, alert, emergency; got " +
                                            level_it->dump());
    return;
  }
  {
    std::lock_guard lock(m_mutex);
    m_log_level = *level;
    m_log_level_set = true;
  }
  r.result(json::object());
}

void Session::handle_list_resources(const Request& r) {
  auto* provider = m_server->resources();
  const bool templates = r.method == "resources/templates/list";
  if (r.method == "prompts/list" || !provider) {
    const char* key = r.method == "resources/list" ? "resources" : templates ? "resourceTemplates" : "prompts";
    r.result({{key, json::array()}});
    return;
  }
  // The provider may ask hosts: never on the connection's reading thread.
  run_in_worker(r.id, r.inbound, [provider, templates, id = r.id](const Call&) {
    try {
      return templates ? make_result(id, {{"resourceTemplates", provider->templates()}})
                       : make_result(id, {{"resources", provider->list()}});
    } catch (const std::exception& e) {
      return make_error(id, error_code::internal_error, std::string("Cannot list resources: ") + e.what());
    }
  });
}

void Session::handle_resource_uri(const Request& r) {
  auto uri_it = r.params.find("uri");
  if (uri_it == r.params.end() || !uri_it->is_string()) {
    r.error(error_code::invalid_params, "Invalid params: missing string field 'uri'");
    return;
  }
  const std::string uri = uri_it->get<std::string>();
  auto* provider = m_server->resources();
  if (r.method == "resources/read") {
    if (!provider) {
      r.error(error_code::resource_not_found, "Resource not found: " + uri, {{"uri", uri}});
      return;
    }
    run_in_worker(r.id, r.inbound, [provider, uri, id = r.id](const Call&) {
      std::optional<json> contents;
      try {
        contents = provider->read(uri);
      } catch (const std::exception& e) {
        return make_error(id, error_code::internal_error, "Cannot read " + uri + ": " + e.what());
      }
      if (!contents) {
        return resource_not_found(id, uri);
      }
      return make_result(id, {{"contents", std::move(*contents)}});
    });
    return;
  }
  if (r.method == "resources/subscribe") {
    // Only to a resource that exists (the spec's -32002 otherwise); the check may touch the store.
    run_in_worker(r.id, r.inbound, [self = shared_from_this(), provider, uri, id = r.id](const Call&) {
      bool exists = false;
      try {
        exists = provider && provider->exists(uri);
      } catch (const std::exception& e) {
        return make_error(id, error_code::internal_error, "Cannot subscribe to " + uri + ": " + e.what());
      }
      if (!exists) {
        return resource_not_found(id, uri);
      }
      std::lock_guard lock(self->m_mutex);
      self->m_subscriptions.insert(uri);
      return make_result(id, json::object());
    });
    return;
  }
  {
    std::lock_guard lock(m_mutex);
    m_subscriptions.erase(uri);
  }
  r.result(json::object());
}

void Session::handle_get_prompt(const Request& r) {
  r.error(error_code::invalid_params, "Invalid params: unknown prompt " + r.params.value("name", json("")).dump() +
                                          " (this server offers no prompts)");
}

} // namespace smcp::mcp::detail
