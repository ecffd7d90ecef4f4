#include "sandbox/exec/process_tree.h"

#include "sandbox/exec/fd.h"
#include "sandbox/exec/signal_safe.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace smcp::exec {

namespace {

struct timespec now_mono() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts;
}

long ms_since(const struct timespec& t0) {
  struct timespec t = now_mono();
  return (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
}

void nap_ms(long ms) {
  struct timespec ts {
    ms / 1000, (ms % 1000) * 1000000
  };
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// Buffers of the async-signal-safe tree walk: used only in single-threaded supervisors.
constexpr std::size_t k_max_procs = 1 << 15;
ProcEntry g_entries[k_max_procs];
pid_t g_pids[k_max_procs];

std::size_t own_descendants() {
  std::size_t n = std::min(scan_processes(g_entries, k_max_procs), k_max_procs);
  return descendants_in(g_entries, n, ::getpid(), g_pids, k_max_procs);
}

} // namespace

std::size_t scan_processes(ProcEntry* entries, std::size_t max) {
  UniqueFd dir(::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    return 0;
  }
  std::size_t total = 0;
  alignas(8) char buf[16 * 1024];
  for (;;) {
    long got = ::syscall(SYS_getdents64, dir.get(), buf, sizeof buf);
    if (got <= 0) {
      break;
    }
    for (long off = 0; off < got;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf + off);
      off += d->d_reclen;
      const char* name = d->d_name;
      if (*name < '1' || *name > '9') {
        continue;
      }
      const char* p = name;
      long pid = parse_long(p);
      if (*p != '\0' || pid <= 0) {
        continue;
      }
      ProcEntry e;
      if (!read_proc_stat(static_cast<pid_t>(pid), e)) {
        continue;
      }
      if (total < max) {
        entries[total] = e;
      }
      ++total;
    }
  }
  dir.reset();
  std::sort(entries, entries + std::min(total, max),
            [](const ProcEntry& a, const ProcEntry& b) { return a.pid < b.pid; });
  return total;
}

std::size_t descendants_in(ProcEntry* entries, std::size_t n, pid_t root, pid_t* out, std::size_t max) {
  for (std::size_t i = 0; i < n; ++i) {
    entries[i].mark = false;
  }
  auto marked = [&](pid_t pid) {
    if (pid == root) {
      return true;
    }
    auto it = std::lower_bound(entries, entries + n, pid, [](const ProcEntry& e, pid_t p) { return e.pid < p; });
    return it != entries + n && it->pid == pid && it->mark;
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (!entries[i].mark && entries[i].pid != root && marked(entries[i].ppid)) {
        entries[i].mark = true;
        changed = true;
      }
    }
  }
  std::size_t k = 0;
  for (std::size_t i = 0; i < n && k < max; ++i) {
    if (entries[i].mark && entries[i].live()) {
      out[k++] = entries[i].pid;
    }
  }
  return k;
}

bool reap_children(pid_t main, int* main_status, bool* main_done) {
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(-1, &st, WNOHANG);
    if (r > 0) {
      if (r == main) {
        *main_status = st;
        *main_done = true;
      }
      continue;
    }
    if (r == 0) {
      return true;
    }
    if (errno == EINTR) {
      continue;
    }
    return false;
  }
}

bool end_subtree(int signal, long grace_ms, pid_t main, int* main_status, bool* main_done, int* signalled) {
  auto send = [](std::size_t k, int sig) {
    for (std::size_t i = 0; i < k; ++i) {
      ::kill(g_pids[i], sig);
      if (sig != SIGKILL && sig != SIGCONT) {
        ::kill(g_pids[i], SIGCONT); // a stopped process would never see the signal
      }
    }
  };
  if (!reap_children(main, main_status, main_done)) {
    *signalled = 0;
    return true;
  }
  std::size_t k = own_descendants();
  *signalled = static_cast<int>(k);
  if (signal != SIGKILL) {
    send(k, signal);
    const struct timespec t0 = now_mono();
    long pause = 1;
    while (ms_since(t0) < grace_ms) {
      if (!reap_children(main, main_status, main_done)) {
        return true;
      }
      nap_ms(pause);
      pause = std::min(pause * 2, 20L);
    }
  }
  // Members may fork meanwhile: repeat KILL until no child is left or time runs out.
  for (int round = 0; round < 25; ++round) {
    if (!reap_children(main, main_status, main_done)) {
      return true;
    }
    send(own_descendants(), SIGKILL);
    const struct timespec t0 = now_mono();
    long pause = 1;
    while (ms_since(t0) < 200) {
      if (!reap_children(main, main_status, main_done)) {
        return true;
      }
      nap_ms(pause);
      pause = std::min(pause * 2, 20L);
    }
  }
  return !reap_children(main, main_status, main_done);
}

std::size_t describe_descendants(char* buf, std::size_t max, std::size_t* len) {
  std::size_t k = own_descendants();
  std::size_t n = 0;
  for (std::size_t i = 0; i < k && n + 20 < max; ++i) {
    char name[32];
    ssize_t got = read_proc_file(g_pids[i], "comm", name, sizeof name);
    if (got <= 0) {
      continue;
    }
    if (n > 0) {
      buf[n++] = ',';
    }
    for (ssize_t j = 0; j < got && name[j] != '\n' && n < max; ++j) {
      buf[n++] = name[j] == ' ' || name[j] == ',' ? '_' : name[j];
    }
  }
  *len = n;
  return k;
}

namespace {

std::vector<ProcEntry> all_processes() {
  std::vector<ProcEntry> entries(1024);
  for (;;) {
    std::size_t total = scan_processes(entries.data(), entries.size());
    if (total <= entries.size()) {
      entries.resize(total);
      return entries;
    }
    entries.resize(total + 256);
  }
}

} // namespace

std::vector<pid_t> session_members(pid_t sid, pid_t exclude) {
  std::vector<pid_t> out;
  for (const auto& e : all_processes()) {
    if (e.sid == sid && e.pid != exclude && e.live()) {
      out.push_back(e.pid);
    }
  }
  return out;
}

std::vector<pid_t> descendants(pid_t root) {
  auto entries = all_processes();
  std::vector<pid_t> out(entries.size());
  out.resize(descendants_in(entries.data(), entries.size(), root, out.data(), out.size()));
  return out;
}

std::vector<pid_t> processes_with_env(const std::string& entry) {
  std::vector<pid_t> out;
  for (const auto& e : all_processes()) {
    if (!e.live()) {
      continue;
    }
    char path[64];
    proc_path(path, e.pid, "environ");
    UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd) {
      continue;
    }
    std::string env;
    char buf[16 * 1024];
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n <= 0 || env.size() > (1u << 20)) {
        break;
      }
      env.append(buf, static_cast<std::size_t>(n));
    }
    for (std::size_t pos = 0; pos < env.size();) {
      std::size_t end = env.find('\0', pos);
      if (end == std::string::npos) {
        end = env.size();
      }
      if (env.compare(pos, end - pos, entry) == 0) {
        out.push_back(e.pid);
        break;
      }
      pos = end + 1;
    }
  }
  return out;
}

bool end_processes(const std::function<std::vector<pid_t>()>& collect, int signal, std::chrono::milliseconds grace,
                   const std::function<void()>& reap) {
  using Clock = std::chrono::steady_clock;
  auto signal_all = [&](int sig) {
    auto members = collect();
    for (pid_t p : members) {
      ::kill(p, sig);
      if (sig != SIGKILL && sig != SIGCONT) {
        ::kill(p, SIGCONT); // a stopped process would never see the signal
      }
    }
    return !members.empty();
  };
  auto wait_gone = [&](std::chrono::milliseconds limit) {
    auto deadline = Clock::now() + limit;
    auto pause = std::chrono::milliseconds(1);
    for (;;) {
      if (reap) {
        reap();
      }
      if (collect().empty()) {
        return true;
      }
      if (Clock::now() >= deadline) {
        return false;
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(20));
    }
  };
  if (!signal_all(signal)) {
    return true;
  }
  if (signal != SIGKILL && wait_gone(grace)) {
    return true;
  }
  for (int round = 0; round < 10; ++round) {
    if (!signal_all(SIGKILL)) {
      return true;
    }
    if (wait_gone(std::chrono::milliseconds(200))) {
      return true;
    }
  }
  return collect().empty();
}

bool end_session(pid_t sid, int signal, std::chrono::milliseconds grace, pid_t exclude, void (*reap)(void*),
                 void* reap_arg) {
  return end_processes([&] { return session_members(sid, exclude); }, signal, grace,
                       [&] {
                         if (reap) {
                           reap(reap_arg);
                         }
                       });
}

} // namespace smcp::exec
