#include "tools/job_resources.h"

#include "tools/common.h"

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
      std::string title = rec.command.size() > 80 ? rec.command.substr(0, 77) + "..." : rec.command;
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
    if (uri.size() <= k_prefix.size() + k_suffix.size() || uri.rfind(k_prefix, 0) != 0 ||
        uri.compare(uri.size() - k_suffix.size(), k_suffix.size(), k_suffix) != 0) {
      return std::nullopt;
    }
    std::string id = uri.substr(k_prefix.size(), uri.size() - k_prefix.size() - k_suffix.size());
    JobPeek p;
    try {
      p = m_jobs.peek(id, k_read_bytes);
    } catch (const std::out_of_range&) {
      return std::nullopt;
    }
    std::string text = p.tail;
    if (p.from > 0) {
      text = "[... " + std::to_string(p.from) + " earlier bytes; the full output is in " +
             (p.job.job_dir.empty() ? p.job.spill_path : p.job.job_dir + "/output") + " ...]\n" + text;
    }
    return json::array({{{"uri", uri}, {"mimeType", "text/plain"}, {"text", std::move(text)}}});
  }

private:
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
