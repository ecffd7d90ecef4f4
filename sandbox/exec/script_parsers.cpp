#include "sandbox/exec/script_parsers.h"

#include "sandbox/exec/words.h"

#include <charconv>

namespace smcp::exec {

namespace {

constexpr char k_record_start = '\x1e';

template <typename T> std::optional<T> to_number(std::string_view text) {
  T value{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

} // namespace

HostFacts parse_probe(std::string_view out) {
  HostFacts facts;
  for_each_line(out, [&](std::string_view line) {
    auto eq = line.find('=');
    if (eq == std::string_view::npos) {
      return;
    }
    std::string_view key = line.substr(0, eq);
    std::string value(line.substr(eq + 1));
    // `command -v` prints an alias or function definition in some shells: keep absolute paths only.
    auto path_only = [](std::string v) { return !v.empty() && v[0] == '/' ? v : std::string(); };
    if (key == "home") {
      facts.home = value;
    } else if (key == "perl") {
      facts.perl = path_only(value);
    } else if (key == "bash") {
      facts.bash = path_only(value);
    } else if (key == "setsid") {
      facts.setsid = path_only(value);
    } else if (key == "boot_id") {
      facts.boot_id = value;
    } else if (key == "uname") {
      facts.uname = value;
    }
  });
  return facts;
}

// ---- foreground ----

MarkerFilter::MarkerFilter(const std::string& nonce) : m_prefix(std::string(1, k_record_start) + nonce + " ") {}

std::string MarkerFilter::feed(std::string_view data) {
  std::string s = std::move(m_held);
  m_held.clear();
  s.append(data);
  std::string out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t at = s.find(k_record_start, pos);
    if (at == std::string::npos) {
      out.append(s, pos, std::string::npos);
      break;
    }
    out.append(s, pos, at - pos);
    std::size_t avail = s.size() - at;
    if (avail < m_prefix.size()) {
      if (s.compare(at, avail, m_prefix, 0, avail) == 0) {
        m_held = s.substr(at); // may become a record with the next chunk
        return out;
      }
      out.push_back(s[at]);
      pos = at + 1;
      continue;
    }
    if (s.compare(at, m_prefix.size(), m_prefix) != 0) {
      out.push_back(s[at]);
      pos = at + 1;
      continue;
    }
    std::size_t nl = s.find('\n', at + m_prefix.size());
    if (nl == std::string::npos) {
      if (avail > 4096) { // not a record of ours after all
        out.append(s, at, std::string::npos);
        return out;
      }
      m_held = s.substr(at);
      return out;
    }
    m_records.push_back(s.substr(at + m_prefix.size(), nl - at - m_prefix.size()));
    pos = nl + 1;
  }
  return out;
}

std::string MarkerFilter::flush() {
  return std::exchange(m_held, std::string());
}

std::vector<std::string> MarkerFilter::take_records() {
  return std::exchange(m_records, {});
}

void apply_record(const std::string& record, SupervisorReport& report) {
  auto words = split_words(record);
  if (words.empty()) {
    return;
  }
  if (words[0] == "sid" && words.size() >= 3) {
    report.sid = to_number<long>(words[1]);
    report.supervisor_pid = to_number<long>(words[2]);
    report.subreaper = words.size() >= 4 && words[3] == "1";
  } else if (words[0] == "left" && words.size() >= 2) {
    report.leftovers = to_number<int>(words[1]).value_or(0);
    report.leftover_names = words.size() >= 3 ? std::string(words[2]) : std::string();
  } else if (words[0] == "gone") {
    report.tree_done = true;
  } else if (words[0] == "survived") {
    report.tree_done = true;
    report.survivors = true;
  } else if (words[0] == "exit" && words.size() >= 2) {
    report.exit_code = to_number<int>(words[1]);
  } else if (words[0] == "signal" && words.size() >= 2) {
    report.signal = to_number<int>(words[1]);
    report.guessed = words.size() >= 3 && words[2] == "guessed";
  } else if (words[0] == "error" && words.size() >= 2 && words[1] == "cwd") {
    report.cwd_missing = true;
  }
}

// ---- durable jobs ----

long parse_job_start(std::string_view out, const std::string& job_dir) {
  long pid = 0;
  std::string error;
  for_each_line(out, [&](std::string_view line) {
    if (line.rfind("pid ", 0) == 0) {
      pid = to_number<long>(line.substr(4)).value_or(0);
    } else if (line.rfind("error ", 0) == 0 && error.empty()) {
      error = std::string(line.substr(6));
    }
  });
  if (!error.empty()) {
    auto sp = error.find(' ');
    std::string kind = error.substr(0, sp);
    std::string message = sp == std::string::npos ? error : error.substr(sp + 1);
    throw HostError(kind == "cwd" ? HostError::Kind::invalid : HostError::Kind::io, message);
  }
  if (pid <= 0) {
    throw HostError(HostError::Kind::io, "the job did not report its process id (see " + job_dir + " on the host)");
  }
  return pid;
}

exec::JobChunk parse_job_read(std::string_view out, const exec::JobRef& job) {
  if (out.rfind("gone", 0) == 0) {
    throw HostError(HostError::Kind::not_found, "job directory " + job.dir + " is gone");
  }
  exec::JobChunk chunk;
  bool have_state = false;
  std::size_t pos = 0;
  while (pos < out.size()) {
    auto nl = out.find('\n', pos);
    if (nl == std::string_view::npos) {
      break;
    }
    std::string_view line = out.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) {
      chunk.data.assign(out.substr(pos));
      if (!have_state) {
        break;
      }
      return chunk;
    }
    auto words = split_words(line);
    if (words.size() < 2) {
      continue;
    }
    if (words[0] == "state") {
      have_state = true;
      if (words[1] == "running") {
        chunk.state.phase = exec::JobState::Phase::running;
      } else if (words[1] == "vanished") {
        chunk.state.phase = exec::JobState::Phase::vanished;
        if (words.size() >= 4) {
          std::string n(words[3]);
          chunk.state.note = "the job's supervisor was killed from outside, so its output and exit status could no "
                             "longer be recorded; " +
                             n +
                             (n == "1" ? " process of the job that was still running "
                                       : " processes of the job that were still running ") +
                             (words[2] == "ended" ? (n == "1" ? "was ended" : "were ended") : "could not all be ended");
        }
      } else if (words[1] == "exit" && words.size() >= 3) {
        chunk.state.phase = exec::JobState::Phase::exited;
        chunk.state.exit_code = to_number<int>(words[2]).value_or(0);
      } else if (words[1] == "signal" && words.size() >= 3) {
        chunk.state.phase = exec::JobState::Phase::signaled;
        chunk.state.signal = to_number<int>(words[2]).value_or(0);
      } else {
        chunk.state.phase = exec::JobState::Phase::vanished;
      }
    } else if (words[0] == "size") {
      chunk.size = to_number<std::uint64_t>(words[1]).value_or(0);
    } else if (words[0] == "from") {
      chunk.offset = to_number<std::uint64_t>(words[1]).value_or(0);
    }
  }
  throw HostError(HostError::Kind::io, "unexpected answer while reading job " + job.id + " in " + job.dir);
}

KillOutcome parse_kill(std::string_view out) {
  KillOutcome k;
  k.gone = out.rfind("gone", 0) == 0;
  k.untracked = k.gone && out.rfind("gone untracked", 0) == 0;
  if (!k.gone) {
    auto nl = out.find('\n');
    k.left = std::string(out.substr(out.rfind("left", 0) == 0 ? 4 : 0, nl == std::string_view::npos ? out.size() : nl));
  }
  return k;
}

// ---- file windows ----

exec::FileWindow parse_file_window(std::string_view out, const exec::FileReadRequest& req,
                                   std::uint64_t count_lines_below) {
  if (out.rfind("error ", 0) == 0) {
    auto nl = out.find('\n');
    std::string what(out.substr(6, nl == std::string_view::npos ? std::string_view::npos : nl - 6));
    if (what == "not_found") {
      throw HostError(HostError::Kind::not_found, "no such file: " + req.path);
    }
    if (what == "directory") {
      throw HostError(HostError::Kind::invalid,
                      req.path + " is a directory; list it with remote_bash {command: \"ls -la " + req.path + "\"}");
    }
    if (what == "special") {
      throw HostError(HostError::Kind::invalid, req.path + " is not a regular file (device, FIFO or socket)");
    }
    if (what == "denied") {
      throw HostError(HostError::Kind::refused, "permission denied: " + req.path);
    }
    if (what == "binary") {
      throw HostError(HostError::Kind::invalid, req.path + " looks like a binary file (it contains NUL bytes); "
                                                           "inspect it with remote_bash, e.g. `xxd | head`");
    }
    throw HostError(HostError::Kind::io, "cannot read " + req.path + ": " + what);
  }
  exec::FileWindow w;
  std::uint64_t size = 0;
  bool nonl = false, have_size = false, have_end = false;
  long count = 0, found = 0, records = 0;
  bool more = false, cut = false;
  std::uint64_t bytes = 0;
  std::optional<std::uint64_t> newline_count;
  bool has_nul = false;
  for_each_line(out, [&](std::string_view line) {
    if (line.empty()) {
      return;
    }
    switch (line[0]) {
    case 'L':
      if (line.find('\0') != std::string_view::npos) {
        has_nul = true;
      }
      w.lines.emplace_back(line.substr(1));
      break;
    case 'S': {
      auto words = split_words(line);
      if (words.size() >= 3) {
        size = to_number<std::uint64_t>(words[1]).value_or(0);
        nonl = words[2] == "1";
        have_size = true;
      }
      break;
    }
    case 'E': {
      auto words = split_words(line);
      if (words.size() >= 7) {
        count = to_number<long>(words[1]).value_or(0);
        more = words[2] == "1";
        cut = words[3] == "1";
        found = to_number<long>(words[4]).value_or(0);
        bytes = to_number<std::uint64_t>(words[5]).value_or(0);
        records = to_number<long>(words[6]).value_or(0);
        have_end = true;
      }
      break;
    }
    case 'T': {
      auto words = split_words(line);
      if (words.size() >= 2) {
        newline_count = to_number<std::uint64_t>(words[1]);
      }
      break;
    }
    default:
      break;
    }
  });
  // Counts are never negative, and bounded so the arithmetic below cannot overflow (the file may
  // grow while it is read: they are not bounded by `size`).
  constexpr long k_max_count = 1L << 62;
  const auto sane = [&](long n) { return n >= 0 && n <= k_max_count; };
  if (!have_size || !have_end || static_cast<long>(w.lines.size()) != count || !sane(found) || !sane(records) ||
      (newline_count && *newline_count > static_cast<std::uint64_t>(k_max_count))) {
    throw HostError(HostError::Kind::io, "unexpected answer while reading " + req.path +
                                             " (the host needs a POSIX sh with awk, head, tail, od and wc)");
  }
  if (has_nul) {
    throw HostError(HostError::Kind::invalid, req.path + " looks like a binary file (it contains NUL bytes)");
  }
  w.cut_lines = cut;
  w.more_after = more;
  if (req.offset > 0) {
    w.start_line = req.offset;
    if (count == 0) {
      // Fewer lines than the offset: an empty window past the end.
      w.more_before = size > 0;
      w.total_lines = records;
      return w;
    }
    w.more_before = req.offset > 1;
    if (!w.more_after) {
      w.total_lines = w.start_line - 1 + count;
    }
    return w;
  }
  // Tail window: `found` lines from the end, covering `bytes` (one too many without a final newline).
  std::uint64_t covered = bytes - (nonl && found > 0 ? 1 : 0);
  std::uint64_t start_pos = covered >= size ? 0 : size - covered;
  if (start_pos == 0 || (size <= count_lines_below && newline_count)) {
    long total = start_pos == 0 ? found : static_cast<long>(*newline_count + (nonl ? 1 : 0));
    long before = total - found;
    w.start_line = before + 1;
    w.total_lines = total;
  } else {
    w.start_line = -found;
  }
  w.more_before = start_pos > 0;
  return w;
}

} // namespace smcp::exec
