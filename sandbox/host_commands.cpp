#include "sandbox/host_commands.h"

#include "sandbox/registry.h"

#include "sandbox/exec/quote.h"

#include <sstream>

namespace smcp::sandbox {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!trim(line).empty()) {
      lines.push_back(trim(line));
    }
  }
  return lines;
}

bool mentions(const std::string& text, const char* what) {
  std::string lower = text;
  for (auto& c : lower) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return lower.find(what) != std::string::npos;
}

std::string join(const std::vector<std::string>& words, const char* separator) {
  std::string s;
  for (const auto& w : words) {
    s += (s.empty() ? "" : separator) + w;
  }
  return s;
}

std::string CommandOutcome::message() const {
  std::string m = trim(err.empty() ? out : err);
  // What a program said may come from inside a sandbox: no terminal control (ESC sequences, C1
  // controls as UTF-8) reaches a human's terminal through our messages.
  std::string clean;
  for (std::size_t i = 0; i < m.size(); ++i) {
    const auto c = static_cast<unsigned char>(m[i]);
    if (c == 0xC2 && i + 1 < m.size() && static_cast<unsigned char>(m[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(m[i + 1]) <= 0x9F) {
      clean += '?';
      ++i;
    } else if (c == '\n') {
      clean += "\n  | "; // a line of what the program said, never one that looks like ours
    } else if ((c < 0x20 && c != '\t') || c == 0x7F) {
      clean += '?';
    } else {
      clean += static_cast<char>(c);
    }
  }
  m = clean;
  if (m.size() > 600) {
    m = m.substr(0, 600) + "...";
  }
  if (m.empty()) {
    m = status < 0 ? "ended by a signal" : "exit status " + std::to_string(status);
  }
  return m;
}

CommandOutcome run_argv(exec::RemoteExecutor& x, const std::vector<std::string>& argv,
                        std::chrono::milliseconds timeout, const std::string& input) {
  exec::RemoteCommand c;
  c.argv = argv;
  if (!c.argv.empty() && c.argv[0] == "git") {
    // A sandbox can write the repository's git directory (commits need it): git run here must
    // never execute what it may have put there (hooks, an fsmonitor command).
    c.argv.insert(c.argv.begin() + 1, {"-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"});
  }
  c.input = input;
  c.what = "`" + display_command(argv) + "`";
  CommandOutcome o;
  try {
    exec::RemoteResult r = x.run(std::move(c), timeout);
    o.status = r.exit_status ? *r.exit_status : -1;
    o.out = std::move(r.out);
    o.err = std::move(r.err);
  } catch (const exec::HostError& e) {
    if (e.kind() != exec::HostError::Kind::not_found) {
      throw;
    }
    o.status = 127;
    o.err = e.what();
  }
  return o;
}

std::string display_command(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& word : argv) {
    bool plain = !word.empty();
    for (char c : word) {
      plain = plain && (std::isalnum(static_cast<unsigned char>(c)) ||
                        std::string_view("-_./:=@,%+").find(c) != std::string_view::npos);
    }
    s += (s.empty() ? "" : " ") + (plain ? word : exec::sh_quote(word));
  }
  return s;
}

void step_failed(const std::string& message) {
  throw SandboxError(SandboxError::Kind::failed, message);
}

} // namespace smcp::sandbox
