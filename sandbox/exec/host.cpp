#include "sandbox/exec/host.h"

#include <csignal>
#include <cstring>
#include <string>

namespace smcp::exec {

namespace {
struct SignalEntry {
  const char* name;
  int number;
};
constexpr SignalEntry k_signals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"ILL", SIGILL},   {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT}, {"BUS", SIGBUS},     {"FPE", SIGFPE},   {"KILL", SIGKILL}, {"USR1", SIGUSR1},
    {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},   {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM},
    {"CHLD", SIGCHLD}, {"CONT", SIGCONT},   {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU}, {"URG", SIGURG},     {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM},
    {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},     {"PWR", SIGPWR},   {"SYS", SIGSYS},
};
} // namespace

std::string signal_name(int signal) {
  for (const auto& s : k_signals) {
    if (s.number == signal) {
      return std::string("SIG") + s.name;
    }
  }
  return "SIG" + std::to_string(signal);
}

std::optional<int> parse_signal(std::string_view name) {
  if (name.empty()) {
    return std::nullopt;
  }
  if (name.find_first_not_of("0123456789") == std::string_view::npos) {
    if (name.size() > 3) {
      return std::nullopt;
    }
    int n = std::stoi(std::string(name));
    return n > 0 && n < 65 ? std::optional<int>(n) : std::nullopt;
  }
  std::string upper;
  for (char c : name) {
    upper.push_back(static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c));
  }
  if (upper.rfind("SIG", 0) == 0) {
    upper = upper.substr(3);
  }
  for (const auto& s : k_signals) {
    if (upper == s.name) {
      return s.number;
    }
  }
  return std::nullopt;
}

HostStatus Host::status() const {
  HostStatus s;
  s.name = name();
  return s;
}

} // namespace smcp::exec
