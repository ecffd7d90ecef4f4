#include "tools/job_resources.h"

#include "tools/common.h"
#include "tools/jobs/text.h"

namespace smcp::tools {

namespace {

constexpr std::size_t k_listed_jobs = 100;
constexpr std::size_t k_read_bytes = 64 * 1024;
constexpr std::string_view k_prefix = "job://";
constexpr std::string_view k_suffix = "/output";

class JobResources final : public mcp::ResourceProvider {
public:
  explicit JobResources(JobManager& jobs) : m_jobs(jobs) {}

  json list() override {
    json out = json::array();
    for (const auto& rec : m_jobs.list(k_listed_jobs, /*refresh=*/false)) {
      std::string title =
          rec.command.size() > 80 ? rec.command.substr(0, utf8_prefix_length(rec.command, 77)) + "..." : rec.command;
      out.push_back({{"uri", job_resource_uri(rec.id)},
                     {"name", rec.id},
                     {"title", title},
                     {"description", "Output of `" + title + "` on " + rec.host + " (" + rec.status + ", started " +
                                         iso_time(rec.started_at_ms) + ")"},
                     {"mimeType", "text/plain"}});
    }
    return out;
  }

  json templates() override {
    return json::array({{{"uriTemplate", "job://{bash_id}/output"},
                         {"name", "job-output"},
                         {"title", "Job output"},
                         {"description", "The newest 64 KiB of a job's output (stdout and stderr merged)"},
                         {"mimeType", "text/plain"}}});
  }

  std::optional<json> read(const std::string& uri) override {
    auto p = peek(uri, k_read_bytes);
    if (!p) {
      return std::nullopt;
    }
    std::string text = p->tail;
    if (p->from > 0) {
      text = "[... " + std::to_string(p->from) + " earlier bytes; the full output is in " +
             (p->job.job_dir.empty() ? p->job.spill_path : p->job.job_dir + "/output") + " ...]\n" + text;
    }
    return json::array({{{"uri", uri}, {"mimeType", "text/plain"}, {"text", std::move(text)}}});
  }

  bool exists(const std::string& uri) override { return peek(uri, 0).has_value(); }

private:
  // The job named by job://BASH_ID/output, with the newest `bytes` of its output; nullopt for
  // anything else.
  std::optional<JobPeek> peek(const std::string& uri, std::size_t bytes) {
    if (uri.size() <= k_prefix.size() + k_suffix.size() || uri.rfind(k_prefix, 0) != 0 ||
        uri.compare(uri.size() - k_suffix.size(), k_suffix.size(), k_suffix) != 0) {
      return std::nullopt;
    }
    try {
      return m_jobs.peek(uri.substr(k_prefix.size(), uri.size() - k_prefix.size() - k_suffix.size()), bytes);
    } catch (const std::out_of_range&) {
      return std::nullopt;
    }
  }

  JobManager& m_jobs;
};

} // namespace

std::string job_resource_uri(const std::string& bash_id) {
  return std::string(k_prefix) + bash_id + std::string(k_suffix);
}

std::shared_ptr<mcp::ResourceProvider> make_job_resources(JobManager& jobs) {
  return std::make_shared<JobResources>(jobs);
}

} // namespace smcp::tools
