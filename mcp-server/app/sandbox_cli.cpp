#include "mcp-server/app/sandbox_cli.h"

#include "sandbox/host_commands.h"
#include "sandbox/exec/local_executor.h"

#include <cstdio>
#include <ctime>
#include <iostream>
#include <unistd.h>

namespace smcp::app {

namespace {

// "3m", "2h", "5d" since a "YYYY-MM-DD HH:MM:SS" UTC time.
std::string age(const std::string& created_at) {
  std::tm tm{};
  if (!strptime(created_at.c_str(), "%Y-%m-%d %H:%M:%S", &tm)) {
    return "?";
  }
  const long s = static_cast<long>(std::difftime(std::time(nullptr), timegm(&tm)));
  if (s < 60) {
    return std::to_string(s < 0 ? 0 : s) + "s";
  }
  if (s < 3600) {
    return std::to_string(s / 60) + "m";
  }
  if (s < 86400) {
    return std::to_string(s / 3600) + "h";
  }
  return std::to_string(s / 86400) + "d";
}

int list(sandbox::SandboxManager& m) {
  auto all = m.list();
  if (all.empty()) {
    std::cout << "No sandboxes in " << m.options().repo_base << " (create one with: sandbox-mcp new -n NAME)\n";
    return 0;
  }
  std::printf("%-16s %-10s %-20s %-9s %-5s %-8s %-10s %-8s %-9s %s\n", "NAME", "HOST", "BRANCH", "STATE", "AGE", "JOB",
              "NODE", "GPUS", "WORK", "WORK_DIR");
  for (const auto& s : all) {
    const std::string gpus = s.row.gpus.empty() ? "-" : s.row.gpus + (s.row.gpu_shared ? "(s)" : "");
    std::printf("%-16s %-10s %-20s %-9s %-5s %-8s %-10s %-8s %-9s %s\n", s.row.name.c_str(), s.row.host.c_str(),
                s.row.branch.c_str(), s.state.text.c_str(), age(s.row.created_at).c_str(),
                s.row.slurm_job_id.empty() ? "-" : s.row.slurm_job_id.c_str(), s.node.empty() ? "-" : s.node.c_str(),
                gpus.c_str(), s.work.state().c_str(), s.row.work_dir.c_str());
    if (s.work.known && s.work.state() != "clean") {
      std::printf("  work: %s\n", s.work.summary().c_str());
    }
    if (!s.note.empty()) {
      std::printf("  note: %s\n", s.note.c_str());
    }
  }
  return 0;
}

int attach(sandbox::SandboxManager& m, const std::string& name) {
  std::vector<std::string> argv = m.attach_argv(name);
  if (!::isatty(0)) {
    std::cerr << "sandbox-mcp attach: needs a terminal; run it in one, or run: " << sandbox::display_command(argv)
              << "\n";
    return 1;
  }
  std::vector<char*> args;
  for (auto& a : argv) {
    args.push_back(a.data());
  }
  args.push_back(nullptr);
  std::cout.flush();
  ::execvp(args[0], args.data());
  std::perror(("sandbox-mcp attach: " + argv[0]).c_str());
  return 1;
}

int run(const CommandLine& cl) {
  AppConfig config = cl.config;
  config.sandbox_cli = true;
  App app(config);
  auto& m = app.sandboxes();
  const auto& s = cl.sandbox;
  if (cl.command == "new") {
    sandbox::NewRequest req;
    req.name = s.name;
    req.branch = s.branch;
    req.ccr = s.ccr;
    req.slurm = s.slurm;
    req.host = s.host;
    req.image = s.image;
    req.repo_base = s.host != "local" ? s.host_repo_base : std::string();
    req.cpus = s.cpus;
    req.memory = s.memory;
    req.pids = s.pids;
    req.partition = s.partition;
    req.time_limit = s.time_limit;
    req.gres = s.gres;
    req.gpus = s.gpus;
    req.gpu_shared = s.gpu_shared;
    req.progress = [](const std::string& line) { std::cerr << line << "\n"; };
    auto info = m.create(req);
    std::cout << "Created sandbox " << info.row.name << " on " << info.row.host << ": branch " << info.row.branch
              << ", repository " << info.row.work_dir << ", container " << info.row.container_id << "\n";
    if (!info.row.slurm_job_id.empty()) {
      std::cout << "Slurm job " << info.row.slurm_job_id << ": " << info.state.text
                << (info.node.empty() ? "" : " on " + info.node) << "\n";
    }
    if (!info.note.empty()) {
      std::cout << "Note: " << info.note << "\n";
    }
    std::cout << "Attach: sandbox-mcp attach -n " << info.row.name << "   (or: " << info.attach_command << ")\n";
    return 0;
  }
  if (cl.command == "ls") {
    return list(m);
  }
  if (cl.command == "rm") {
    auto r = m.remove(s.name, s.force);
    std::cout << "Removed " << r.name << "\n";
    if (!r.rescued.empty()) {
      std::cout << "Its work (" << r.work.summary() << ") is kept at " << r.rescued << "\n";
    }
    for (const auto& n : r.notes) {
      std::cout << "  note: " << n << "\n";
    }
    return 0;
  }
  if (cl.command == "attach") {
    return attach(m, s.name);
  }
  if (cl.command == "sync") {
    auto r = m.sync(s.name);
    for (const auto& line : r.refs) {
      std::cout << line << "\n";
    }
    if (!r.branch_head.empty()) {
      std::cout << "Branch " << r.branch << " is at " << r.branch_head << "\n";
    }
    if (!r.note.empty()) {
      std::cout << "Note: " << r.note << "\n";
    }
    std::cout << "Work still only in the sandbox: " << r.work.summary() << "\n";
    return 0;
  }
  if (cl.command == "reset") {
    const auto& img = app.image_options();
    for (const auto& line : m.reset({img.image, img.base_image}, s.force)) {
      std::cout << line << "\n";
    }
    return 0;
  }
  if (cl.command == "image") {
    exec::LocalExecutor local;
    sandbox::ImageOptions o = app.image_options();
    o.rebuild = s.rebuild;
    sandbox::build_image(local, o, [](const std::string& line) { std::cerr << line << "\n"; });
    std::cout << o.image << "\n";
    return 0;
  }
  std::cerr << "sandbox-mcp: unknown command " << cl.command << "\n";
  return 2;
}

} // namespace

int run_sandbox_command(const CommandLine& cl) {
  try {
    return run(cl);
  } catch (const sandbox::SandboxError& e) {
    std::cerr << "sandbox-mcp " << cl.command << ": " << e.what() << "\n";
    return e.kind() == sandbox::SandboxError::Kind::invalid ? 2 : 1;
  } catch (const std::exception& e) {
    std::cerr << "sandbox-mcp " << cl.command << ": " << e.what() << "\n";
    return 1;
  }
}

} // namespace smcp::app
