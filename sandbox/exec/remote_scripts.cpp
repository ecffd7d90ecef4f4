#include "sandbox/exec/remote_scripts.h"

#include "sandbox/exec/quote.h"

#include <algorithm>
#include <charconv>
#include <csignal>

namespace smcp::exec {

using exec::HostError;

namespace {

constexpr char k_record_start = '\x1e';

// Signals the supervisors ignore (their commands get the default disposition back).
constexpr const char* k_supervisor_signals = "HUP INT QUIT TERM USR1 USR2 ALRM TSTP TTIN TTOU";

std::string perl_signal_list() {
  std::string out = "qw(";
  out += k_supervisor_signals;
  out += " PIPE)";
  return out;
}

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) {
      ++i;
    }
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') {
      ++i;
    }
    if (i > start) {
      words.push_back(line.substr(start, i - start));
    }
  }
  return words;
}

template <typename T> std::optional<T> to_number(std::string_view text) {
  T value{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

// Splits `text` into lines (the last one may lack its newline).
template <typename F> void for_each_line(std::string_view text, F&& f) {
  while (!text.empty()) {
    auto nl = text.find('\n');
    if (nl == std::string_view::npos) {
      f(text);
      return;
    }
    f(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
}

std::string perl_env_list(const exec::CommandSpec& spec) {
  std::string out = "(";
  for (const auto& [k, v] : spec.env) {
    out += perl_quote(k) + ", " + perl_quote(v) + ", ";
  }
  out += ")";
  return out;
}

// `cd` and `export` lines for the shell variants (the names were validated before).
std::string sh_setup_lines(const exec::CommandSpec& spec) {
  std::string out;
  if (!spec.cwd.empty()) {
    out += "cd -- " + sh_quote(spec.cwd) + " || exit 126\n";
  }
  for (const auto& [k, v] : spec.env) {
    out += "export " + k + "=" + sh_quote(v) + "\n";
  }
  return out;
}

void check_spec(const exec::CommandSpec& spec) {
  if (contains_nul(spec.command) || contains_nul(spec.cwd)) {
    throw HostError(HostError::Kind::invalid, "the command or working directory contains a NUL byte");
  }
  for (const auto& [k, v] : spec.env) {
    if (!is_shell_identifier(k)) {
      throw HostError(HostError::Kind::invalid, "environment variable name '" + k +
                                                    "' cannot be set over SSH: use letters, digits and _ "
                                                    "(not starting with a digit)");
    }
    if (contains_nul(v)) {
      throw HostError(HostError::Kind::invalid, "the value of environment variable " + k + " contains a NUL byte");
    }
  }
}

std::string seconds(std::chrono::milliseconds ms) {
  return std::to_string(ms.count() / 1000) + "." + std::to_string(ms.count() % 1000 / 100) +
         std::to_string(ms.count() % 100 / 10) + std::to_string(ms.count() % 10);
}

// The remote supervisor's own deadline: after the server's (which normally ends the command
// first), so it only acts when the server is gone. 0: none.
long guard_seconds(const exec::CommandSpec& spec, std::chrono::milliseconds grace) {
  if (spec.timeout.count() <= 0) {
    return 0;
  }
  return static_cast<long>((spec.timeout + grace).count() / 1000) + 5;
}

// Reads a session id of a pid from /proc (sh). Sets `alive_sid` to the session when the process
// exists and is not a zombie.
constexpr const char* k_sh_proc_helpers = R"SH(
sid_of() {
  _s=
  _t=
  if [ -r /proc/self/stat ]; then
    _l=
    read -r _l 2>/dev/null < "/proc/$1/stat" || return 0
    _r=${_l##*) }
    set -- $_r
    [ "$1" = Z ] && return 0
    _s=$4
    _t=${20}
  else
    _s=$(ps -o sid= -o stat= -p "$1" 2>/dev/null | awk '$2 !~ /^Z/ { print $1 }')
  fi
}
)SH";

// Perl helpers of both supervisors: become a child subreaper (prctl(PR_SET_CHILD_SUBREAPER), by
// syscall number, Linux only), so every orphan of the command's tree — also one that called
// setsid — is re-parented to the supervisor; find its live descendants through /proc; reap its
// children; end its whole tree and tell whether anything survived.
constexpr const char* k_perl_tree_helpers = R"PERL(
our ($main_pid, $main_st, $main_done) = (0, 0, 0);
sub subreaper {
  return 0 unless $^O eq 'linux';
  require Config;
  my $a = $Config::Config{archname} // '';
  my $nr = $a =~ /^x86_64/ ? 157 : $a =~ /^(aarch64|arm64|riscv64|loongarch64)/ ? 167
         : $a =~ /^(i[3-6]86|arm|s390)/ ? 172 : $a =~ /^(powerpc|ppc)/ ? 171 : 0;
  return $nr && syscall($nr, 36, 1, 0, 0, 0) == 0 ? 1 : 0;
}
sub descendants {
  my ($root) = @_;
  my (%kids, %state);
  opendir(my $d, '/proc') or return ();
  for my $e (readdir($d)) {
    next unless $e =~ /^\d+$/;
    open(my $f, '<', "/proc/$e/stat") or next;
    my $l = <$f>;
    close($f);
    next unless defined($l) && $l =~ /\)\s+(\S)\s+(-?\d+)/;
    push(@{$kids{$2}}, $e);
    $state{$e} = $1;
  }
  closedir($d);
  my (@out, %seen);
  my @todo = ($root);
  while (@todo) {
    for my $c (@{$kids{shift(@todo)} // []}) {
      next if $seen{$c}++;
      push(@todo, $c);
      push(@out, $c) if $state{$c} ne 'Z';
    }
  }
  return @out;
}
sub reap_all {
  for (;;) {
    my $r = waitpid(-1, 1); # WNOHANG (loading POSIX would cost every command milliseconds)
    if ($r > 0) {
      ($main_st, $main_done) = ($?, 1) if $r == $main_pid;
      next;
    }
    return $r; # 0: children remain; -1: none left
  }
}
sub names_of {
  my @n;
  for my $p (@_[0 .. ($#_ < 7 ? $#_ : 7)]) {
    open(my $f, '<', "/proc/$p/comm") or next;
    my $c = <$f> // '';
    close($f);
    chomp($c);
    $c =~ s/[\s,]/_/g;
    push(@n, $c);
  }
  return join(',', @n);
}
sub nap { select(undef, undef, undef, $_[0]); }
# TERM (then KILL after $grace seconds) to every descendant; 1 when no child is left.
sub end_tree {
  my ($grace) = @_;
  return 1 if reap_all() < 0;
  my @d = descendants($$);
  kill('TERM', @d);
  kill('CONT', @d);
  for (my $t = 0; $t < $grace; $t += 0.02) {
    return 1 if reap_all() < 0;
    nap(0.02);
  }
  for my $round (1 .. 25) {
    return 1 if reap_all() < 0;
    kill('KILL', descendants($$));
    for (1 .. 10) {
      return 1 if reap_all() < 0;
      nap(0.02);
    }
  }
  return reap_all() < 0 ? 1 : 0;
}
)PERL";

} // namespace

std::string sh_exec() {
  return "exec /bin/sh -s";
}

std::string perl_exec(const std::string& perl) {
  return "exec " + sh_quote(perl) + " -";
}

std::string probe_script() {
  return R"SH(printf 'home=%s\n' "$HOME"
printf 'perl=%s\n' "$(command -v perl 2>/dev/null)"
printf 'bash=%s\n' "$(command -v bash 2>/dev/null)"
printf 'setsid=%s\n' "$(command -v setsid 2>/dev/null)"
b=
read -r b 2>/dev/null < /proc/sys/kernel/random/boot_id
printf 'boot_id=%s\n' "$b"
printf 'uname=%s\n' "$(uname -s 2>/dev/null)"
)SH";
}

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

ForegroundScript foreground_script(const exec::CommandSpec& spec, const std::string& command_shell,
                                   const std::string& nonce, const std::string& perl, std::chrono::milliseconds grace) {
  check_spec(spec);
  ForegroundScript s;
  if (!perl.empty()) {
    s.exec = perl_exec(perl);
    s.input = "my $n = " + perl_quote(nonce) + ";\nmy $cmd = " + perl_quote(spec.command) +
              ";\nmy $cwd = " + perl_quote(spec.cwd) + ";\nmy $shell = " + perl_quote(command_shell) +
              ";\nmy @env = " + perl_env_list(spec) + ";\nmy @sigs = " + perl_signal_list() +
              ";\nmy $grace = " + seconds(grace) + ";\nmy $limit = " + std::to_string(guard_seconds(spec, grace)) +
              ";\n" + k_perl_tree_helpers +
              R"PERL(
$SIG{$_} = 'IGNORE' for @sigs;
my $sr = subreaper();
my $sid = getpgrp();
if (open(my $f, '<', "/proc/$$/stat")) {
  my $l = <$f>;
  close($f);
  $sid = $1 if defined($l) && $l =~ /\)\s+\S+\s+-?\d+\s+-?\d+\s+(\d+)/;
}
syswrite(STDERR, "\x1e$n sid $sid $$ $sr\n");
if ($cwd ne '' && !-d $cwd) {
  syswrite(STDERR, "\x1e$n error cwd\n");
  exit(0);
}
my $pid = fork();
if (!defined($pid)) {
  syswrite(STDERR, "sandbox-mcp: fork failed: $!\n\x1e$n exit 127\n");
  exit(0);
}
if ($pid == 0) {
  $SIG{$_} = 'DEFAULT' for @sigs;
  open(STDIN, '<', '/dev/null');
  if ($cwd ne '' && !chdir($cwd)) {
    syswrite(STDERR, "sandbox-mcp: cannot change to the working directory $cwd: $!\n");
    exit(126);
  }
  while (@env) {
    my $k = shift(@env);
    $ENV{$k} = shift(@env);
  }
  exec {$shell} $shell, '-c', $cmd;
  syswrite(STDERR, "sandbox-mcp: cannot execute $shell: $!\n");
  exit(127);
}
$main_pid = $pid;
# The server ends the command on its timeout; this guard does it when the server is gone.
eval {
  local $SIG{ALRM} = sub { die "expired\n" }; # perl restarts waitpid after a handler that returns
  alarm($limit) if $limit > 0;
  until ($main_done) {
    my $r = waitpid(-1, 0);
    if ($r == $pid) {
      ($main_st, $main_done) = ($?, 1);
    } elsif ($r < 0) {
      last;
    }
  }
  alarm(0);
};
alarm(0);
my $gone = 1;
my $ended = 0;
if (!$main_done) {
  $gone = end_tree($grace);
  $ended = 1;
}
my $st = $main_st;
syswrite(STDERR, ($st & 127) ? "\x1e$n signal " . ($st & 127) . "\n" : "\x1e$n exit " . ($st >> 8) . "\n");
if ($sr && !$ended) {
  # What the command left running gets a moment to end by itself, then is ended.
  for (1 .. 5) {
    last if reap_all() < 0;
    nap(0.02);
  }
  if (reap_all() == 0) {
    my @left = descendants($$);
    syswrite(STDERR, "\x1e$n left " . scalar(@left) . " " . names_of(@left) . "\n") if @left;
    $gone = end_tree($grace);
  }
}
syswrite(STDERR, "\x1e$n " . ($gone ? "gone" : "survived") . "\n") if $sr;
exit(0);
)PERL";
    return s;
  }
  s.exec = sh_exec();
  s.input = "n=" + sh_quote(nonce) + "\n" + k_sh_proc_helpers + "trap : " + k_supervisor_signals + "\n" +
            R"SH(sid_of $$
[ -n "$_s" ] || _s=$$
printf '\036%s sid %s %s 0\n' "$n" "$_s" "$$" >&2
)SH";
  if (!spec.cwd.empty()) {
    s.input += "if [ ! -d " + sh_quote(spec.cwd) + " ]; then printf '\\036%s error cwd\\n' \"$n\" >&2; exit 0; fi\n";
  }
  s.input += std::string("(\ntrap - ") + k_supervisor_signals + "\n" + sh_setup_lines(spec) + "exec " +
             sh_quote(command_shell) + " -c " + sh_quote(spec.command) + "\n) </dev/null\n" + R"SH(st=$?
if [ "$st" -gt 128 ] && [ "$st" -lt 193 ]; then
  printf '\036%s signal %s guessed\n' "$n" "$((st - 128))" >&2
else
  printf '\036%s exit %s\n' "$n" "$st" >&2
fi
)SH";
  return s;
}

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

ForegroundScript job_start_script(const exec::CommandSpec& spec, const std::string& job_dir,
                                  const std::string& command_shell, const std::string& perl, std::uint64_t output_cap,
                                  std::chrono::milliseconds grace) {
  check_spec(spec);
  if (contains_nul(job_dir) || job_dir.empty() || job_dir[0] != '/') {
    throw HostError(HostError::Kind::invalid, "job directory must be an absolute path: " + job_dir);
  }
  ForegroundScript s;
  if (!perl.empty()) {
    s.exec = perl_exec(perl);
    s.input = "my $dir = " + perl_quote(job_dir) + ";\nmy $cmd = " + perl_quote(spec.command) +
              ";\nmy $cwd = " + perl_quote(spec.cwd) + ";\nmy $shell = " + perl_quote(command_shell) +
              ";\nmy @env = " + perl_env_list(spec) + ";\nmy @sigs = " + perl_signal_list() +
              ";\nmy $cap = " + std::to_string(output_cap) + ";\nmy $grace = " + seconds(grace) + ";\n" +
              k_perl_tree_helpers + R"PERL(
require POSIX;
sub fail { syswrite(STDOUT, "error $_[0] $_[1]\n"); exit(0); }
sub put {
  my ($path, $text) = @_;
  open(my $f, '>', "$path.tmp") or return 0;
  print $f $text;
  close($f) or return 0;
  return rename("$path.tmp", $path);
}
fail('cwd', "working directory $cwd does not exist") if $cwd ne '' && !-d $cwd;
my $acc = '';
my @parts = split(m{/}, $dir);
pop(@parts);
for my $p (@parts) {
  next if $p eq '';
  $acc .= "/$p";
  mkdir($acc, 0700) unless -d $acc;
}
mkdir($dir, 0700) or fail('io', "cannot create job directory $dir: $!");
my $boot = '';
if (open(my $b, '<', '/proc/sys/kernel/random/boot_id')) { $boot = <$b> // ''; close($b); chomp($boot); }
put("$dir/command", "$cmd\n");
put("$dir/boot_id", "$boot\n");
open(my $o, '>', "$dir/output") or fail('io', "cannot create $dir/output: $!");
close($o);
pipe(my $r, my $w) or fail('io', "pipe: $!");
my $mid = fork();
fail('io', "fork: $!") unless defined($mid);
if ($mid == 0) {
  close($r);
  my $sup = fork();
  POSIX::_exit(defined($sup) ? 0 : 1) if !defined($sup) || $sup != 0;
  POSIX::setsid();
  # Orphans of the job's tree (also those that left its session) become our children.
  my $sr = subreaper();
  open(STDIN, '<', '/dev/null');
  open(STDOUT, '>', '/dev/null');
  open(STDERR, '>', '/dev/null');
  $SIG{$_} = 'IGNORE' for @sigs;
  # The start time (field 22 of /proc/PID/stat) tells this supervisor from a later process that
  # gets the same pid.
  if (open(my $sf, '<', "/proc/$$/stat")) {
    my $l = <$sf> // '';
    close($sf);
    $l =~ s/^.*\) //s;
    my @f = split(/ /, $l);
    put("$dir/starttime", "$f[19]\n") if defined $f[19];
  }
  put("$dir/tracked", "1\n") if $sr;
  put("$dir/pid", "$$\n");
  syswrite($w, "$$\n");
  close($w);
  # The command writes into a pipe; the supervisor copies it to the output file up to the cap.
  my $piped = pipe(my $pr, my $pw);
  my $job = fork();
  if (defined($job) && $job == 0) {
    $SIG{$_} = 'DEFAULT' for @sigs;
    if ($piped) {
      close($pr);
      open(STDOUT, '>&', $pw) or POSIX::_exit(126);
    } else {
      open(STDOUT, '>>', "$dir/output") or POSIX::_exit(126);
    }
    open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
    if ($cwd ne '' && !chdir($cwd)) {
      syswrite(STDERR, "sandbox-mcp: cannot change to the working directory $cwd: $!\n");
      POSIX::_exit(126);
    }
    while (@env) {
      my $k = shift(@env);
      $ENV{$k} = shift(@env);
    }
    exec {$shell} $shell, '-c', $cmd;
    syswrite(STDERR, "sandbox-mcp: cannot execute $shell: $!\n");
    POSIX::_exit(127);
  }
  if (!defined($job)) {
    put("$dir/status", "exit 127\n");
    POSIX::_exit(1);
  }
  $main_pid = $job;
  my $st;
  my $reaped = 0;
  if ($piped) {
    close($pw);
    open(my $out, '>>', "$dir/output");
    my ($written, $discarded) = (0, 0);
    my $copy = sub {
      my $len = length($_[0]);
      my $room = $cap > $written ? $cap - $written : 0;
      my $keep = $len < $room ? $len : $room;
      if ($keep > 0) {
        syswrite($out, $_[0], $keep);
        $written += $keep;
      }
      if ($keep < $len) {
        syswrite($out, "\n[sandbox-mcp: output cap of $cap bytes reached; further output is discarded]\n")
          unless $discarded;
        $discarded += $len - $keep;
      }
    };
    my $rin = '';
    vec($rin, fileno($pr), 1) = 1;
    my $open = 1;
    while ($open && !$reaped) {
      my $n = select(my $rout = $rin, undef, undef, 0.2);
      if ($n > 0) {
        my $got = sysread($pr, my $buf, 65536);
        if ($got) { $copy->($buf); } elsif (defined($got)) { $open = 0; }
      }
      reap_all();
      if ($main_done) {
        $st = $main_st;
        $reaped = 1;
      }
    }
    # The command ended: take what is already in the pipe. Processes it left behind that write
    # later get EPIPE: the job is over.
    while ($open && select(my $rout = $rin, undef, undef, 0) > 0) {
      my $got = sysread($pr, my $buf, 65536);
      last unless $got;
      $copy->($buf);
    }
    syswrite($out, "[sandbox-mcp: $discarded bytes of output were discarded after the cap]\n") if $discarded;
    close($pr);
  }
  until ($main_done) {
    my $r = waitpid(-1, 0);
    if ($r == $job) {
      ($main_st, $main_done) = ($?, 1);
    } elsif ($r < 0 && !$!{EINTR}) {
      last;
    }
  }
  $st = $main_st;
  # A job is its whole tree: what the command left running is ended with it, and said so. What is
  # ending anyway (a kill reached the whole tree) gets a moment first, so it is not named.
  for (1 .. 5) {
    last if reap_all() < 0;
    nap(0.02);
  }
  if (reap_all() == 0) {
    my @left = descendants($$);
    my $gone = end_tree($grace);
    if (@left && open(my $lo, '>>', "$dir/output")) {
      syswrite($lo, "[sandbox-mcp: the command ended; " . scalar(@left) .
                    (@left == 1 ? " process it left running was ended (" : " processes it left running were ended (") .
                    names_of(@left) . ($gone ? ")]\n" : "); some survived SIGKILL]\n"));
      close($lo);
    }
  }
  put("$dir/status", ($st & 127) ? "signal " . ($st & 127) . "\n" : "exit " . ($st >> 8) . "\n");
  POSIX::_exit(0);
}
close($w);
waitpid($mid, 0);
my $pid = <$r>;
fail('io', "the job supervisor did not start (see $dir)") unless defined($pid) && $pid =~ /^(\d+)/;
syswrite(STDOUT, "pid $1\n");
)PERL";
    return s;
  }
  // Without perl: setsid(1) starts a /bin/sh supervisor in its own session.
  const std::string q_dir = sh_quote(job_dir);
  std::string supervisor = std::string("d=$1\ntrap : ") + k_supervisor_signals + "\n" +
                           "echo $$ > \"$d/pid.tmp\" && mv -f \"$d/pid.tmp\" \"$d/pid\"\n" + "(\ntrap - " +
                           k_supervisor_signals + "\n" + sh_setup_lines(spec) + "exec " + sh_quote(command_shell) +
                           " -c " + sh_quote(spec.command) + "\n) </dev/null >>\"$d/output\" 2>&1\n" + R"SH(st=$?
if [ "$st" -gt 128 ] && [ "$st" -lt 193 ]; then
  s="signal $((st - 128))
guessed from exit status $st: perl is missing on this host, and a POSIX shell cannot tell a signal from exit $st"
else
  s="exit $st"
fi
printf '%s\n' "$s" > "$d/status.tmp" && mv -f "$d/status.tmp" "$d/status"
)SH";
  s.exec = sh_exec();
  s.input = "d=" + q_dir + "\n";
  if (!spec.cwd.empty()) {
    s.input += "if [ ! -d " + sh_quote(spec.cwd) + " ]; then echo " +
               sh_quote("error cwd working directory " + spec.cwd + " does not exist") + "; exit 0; fi\n";
  }
  s.input +=
      R"SH(command -v setsid >/dev/null 2>&1 || { echo "error io background jobs need perl or setsid(1) on the host"; exit 0; }
mkdir -p -- "${d%/*}" 2>/dev/null
mkdir -m 700 -- "$d" 2>/dev/null || { echo "error io cannot create job directory $d"; exit 0; }
)SH";
  s.input += "printf '%s\\n' " + sh_quote(spec.command) + " > \"$d/command\"\n" + R"SH(b=
read -r b 2>/dev/null < /proc/sys/kernel/random/boot_id
printf '%s\n' "$b" > "$d/boot_id"
: > "$d/output"
)SH";
  s.input +=
      std::string(k_sh_proc_helpers) + "sup=" + sh_quote(supervisor) + "\n" +
      R"SH(setsid -f /bin/sh -c "$sup" sh "$d" </dev/null >/dev/null 2>&1 || { setsid /bin/sh -c "$sup" sh "$d" </dev/null >/dev/null 2>&1 & }
i=0
while [ ! -s "$d/pid" ] && [ "$i" -lt 500 ]; do sleep 0.01 2>/dev/null || sleep 1; i=$((i + 1)); done
p=
read -r p 2>/dev/null < "$d/pid"
if [ -n "$p" ]; then
  sid_of "$p"
  [ -n "$_t" ] && printf '%s\n' "$_t" > "$d/starttime"
  echo "pid $p"
else
  echo "error io the job supervisor did not start (see $d)"
fi
)SH";
  return s;
}

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

namespace {

// Sets $m to the live processes of a command or job, except the supervisor $ex: members of
// session $s, descendants of $root (the supervisor, when it is alive and ours; complete when it is
// a subreaper), and processes whose environment holds $mark.
constexpr const char* k_sh_members = R"SH(
members() {
  m=$( {
    for p in /proc/[0-9]*; do
      l=
      read -r l 2>/dev/null < "$p/stat" || continue
      r=${l##*) }
      set -- $r
      echo "${p#/proc/} $2 $4 $1"
    done
    [ -n "$mark" ] && grep -lzxF -e "$mark" /proc/[0-9]*/environ 2>/dev/null | sed 's,^/proc/\([0-9]*\)/environ$,E \1,'
  } | awk -v s="$s" -v e="$ex" -v root="$root" '
    $1 == "E" { env[$2] = 1; next }
    { st[$1] = $4; pp[$1] = $2; ss[$1] = $3 }
    END {
      if (root != "") {
        d[root] = 1
        do { ch = 0; for (p in pp) if (!(p in d) && (pp[p] in d)) { d[p] = 1; ch = 1 } } while (ch)
      }
      for (p in st) {
        if (p == e || p == root || st[p] == "Z") continue
        if ((s != "" && ss[p] == s) || (p in d) || (p in env)) print p
      }
    }' | sort -n | awk '{ printf " %s", $1 }')
  # (In pid order, so a shell is signalled before the children it waits for: a child ended first
  # would let the shell run on, and the job end as "exited" instead of by the signal.)
  if [ -z "$m" ] && [ ! -r /proc/self/stat ] && [ -n "$s" ]; then
    m=$(ps -A -o pid= -o sid= -o stat= 2>/dev/null | awk -v s="$s" -v e="$ex" '$2 == s && $1 != e && $3 !~ /^Z/ { printf " %s", $1 }')
  fi
}
)SH";

} // namespace

std::string job_marker(const std::string& job_id) {
  return std::string(k_job_marker_name) + "=" + job_id;
}

std::string job_read_script(const exec::JobRef& job, std::uint64_t offset, std::size_t max_bytes) {
  return "d=" + sh_quote(job.dir) + "\npid=" + std::to_string(job.pid) + "\noff=" + std::to_string(offset) +
         "\nmax=" + std::to_string(max_bytes) + "\nmark=" + sh_quote(job_marker(job.id)) + "\n" + k_sh_proc_helpers +
         k_sh_members + R"SH(
[ -d "$d" ] || { echo gone; exit 0; }
st=
[ -f "$d/status" ] && read -r st 2>/dev/null < "$d/status"
if [ -z "$st" ]; then
  b=
  read -r b 2>/dev/null < "$d/boot_id"
  cur=
  read -r cur 2>/dev/null < /proc/sys/kernel/random/boot_id
  alive=0
  if [ "$b" = "$cur" ] && [ "$pid" -gt 0 ]; then
    sid_of "$pid"
    [ "$_s" = "$pid" ] && alive=1
    if [ "$alive" = 1 ] && [ -f "$d/starttime" ] && [ -n "$_t" ]; then
      t0=
      read -r t0 2>/dev/null < "$d/starttime"
      [ "$_t" = "$t0" ] || alive=0
    fi
  fi
  if [ "$alive" = 1 ]; then
    st=running
  else
    [ -f "$d/status" ] && read -r st 2>/dev/null < "$d/status"
  fi
  if [ -z "$st" ] && [ "$b" = "$cur" ]; then
    # The supervisor is gone without a status (killed from outside): the job's output and exit
    # status can no longer be recorded, so whatever still runs of it is ended.
    s=$pid
    ex=$pid
    root=
    if [ -f "$d/starttime" ]; then
      t0=
      read -r t0 2>/dev/null < "$d/starttime"
      sid_of "$pid"
      if [ -n "$_t" ] && [ "$_t" != "$t0" ]; then s=; fi
    fi
    members
    if [ -n "$m" ]; then
      set -- $m
      n=$#
      kill -s TERM $m 2>/dev/null
      kill -s CONT $m 2>/dev/null
      i=0
      while [ -n "$m" ] && [ "$i" -lt 40 ]; do
        sleep 0.05 2>/dev/null || sleep 1
        [ "$i" -ge 20 ] && kill -s KILL $m 2>/dev/null
        members
        i=$((i + 1))
      done
      if [ -z "$m" ]; then st="vanished ended $n"; else st="vanished left $n"; fi
    fi
  fi
  [ -n "$st" ] || st=vanished
fi
size=0
if [ -f "$d/output" ]; then
  set -- $(wc -c < "$d/output")
  size=$1
fi
from=$off
lo=$((size - max))
[ "$lo" -gt "$from" ] && from=$lo
[ "$from" -gt "$size" ] && from=$size
printf 'state %s\nsize %s\nfrom %s\n\n' "$st" "$size" "$from"
if [ "$from" -lt "$size" ]; then
  tail -c "+$((from + 1))" < "$d/output" | head -c "$((size - from))"
fi
)SH";
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

std::string kill_session_script(long sid, long exclude, int signal, std::chrono::milliseconds grace,
                                const std::string& job_dir, const std::string& marker, bool tracked) {
  std::string name = exec::signal_name(signal);
  std::string kill_arg = name.rfind("SIG", 0) == 0 && name.find_first_of("0123456789") == std::string::npos
                             ? "-s " + name.substr(3)
                             : "-" + std::to_string(signal);
  long ticks = std::max<long>(1, static_cast<long>(grace.count() / 50));
  return "sid=" + std::to_string(sid) + "\nex=" + std::to_string(exclude) + "\nticks=" + std::to_string(ticks) +
         "\nd=" + sh_quote(job_dir) + "\nmark=" + sh_quote(marker) + "\ntracked=" + (tracked ? "1" : "0") + "\n" +
         k_sh_proc_helpers + k_sh_members + R"SH(
s=$sid
root=
if [ "$ex" -gt 1 ]; then
  sid_of "$ex"
  [ -n "$_s" ] && root=$ex
fi
if [ -n "$d" ]; then
  b=
  read -r b 2>/dev/null < "$d/boot_id"
  cur=
  read -r cur 2>/dev/null < /proc/sys/kernel/random/boot_id
  if [ -n "$b" ] && [ "$b" != "$cur" ]; then echo "gone (the host rebooted)"; exit 0; fi
  [ -f "$d/tracked" ] && tracked=1
  if [ -f "$d/starttime" ]; then
    t0=
    read -r t0 2>/dev/null < "$d/starttime"
    sid_of "$sid"
    # The job's pid belongs to another process now: only the marker still finds the job's processes.
    if [ -n "$_t" ] && [ "$_t" != "$t0" ]; then s=; root=; fi
  fi
  # Without its supervisor, a job's remaining processes are found by session and marker.
  [ -z "$root" ] && tracked=1
fi
[ "$sid" -gt 1 ] || s=
ok=gone
[ "$tracked" = 1 ] || ok="gone untracked"
nap() { sleep 0.05 2>/dev/null || sleep 1; }
members
[ -z "$m" ] && { echo "$ok"; exit 0; }
)SH" + "kill " +
         kill_arg +
         R"SH( $m 2>/dev/null
kill -s CONT $m 2>/dev/null
i=0
while [ "$i" -lt "$ticks" ]; do
  nap
  members
  [ -z "$m" ] && { echo "$ok"; exit 0; }
  i=$((i + 1))
done
i=0
while [ "$i" -lt 40 ]; do
  kill -s KILL $m 2>/dev/null
  nap
  members
  [ -z "$m" ] && { echo "$ok"; exit 0; }
  i=$((i + 1))
done
echo "left$m"
)SH";
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

std::string remove_job_script(const std::string& job_dir) {
  return "d=" + sh_quote(job_dir) + "\n" + R"SH([ -d "$d" ] || { echo gone; exit 0; }
rm -rf -- "$d" 2>&1 && echo removed
)SH";
}

// ---- file windows ----

namespace {

// Formats lines like local_host.cpp collect_lines: cuts long lines at a UTF-8 boundary with a
// marker, stops at `lim` lines or once `mtb` bytes were emitted. In tail mode it keeps counting
// the lines it does not print, to know where the window starts.
constexpr const char* k_window_awk = R"AWK(
function cont(c) { return c >= "\200" && c < "\300" }
BEGIN { n = 0; total = 0; cut = 0; more = 0; found = 0; bytes = 0 }
{
  if (!tailmode && NR < off) { next }
  found++
  bytes += length($0) + 1
  if (n >= lim || total >= mtb) {
    more = 1
    if (!tailmode) { exit }
    next
  }
  s = $0
  len = length(s)
  if (len > mlb) {
    keep = mlb
    while (keep > 0 && keep < len && cont(substr(s, keep + 1, 1))) { keep-- }
    s = substr(s, 1, keep) " [... line cut: " (len - keep) " more bytes]"
    cut = 1
  }
  total += length(s) + 8
  print "L" s
  n++
}
END { printf "E %d %d %d %d %d %d\n", n, more, cut, found, bytes, NR }
)AWK";

} // namespace

std::string file_window_script(const exec::FileReadRequest& req, std::uint64_t count_lines_below) {
  if (contains_nul(req.path)) {
    throw HostError(HostError::Kind::invalid, "the file path contains a NUL byte");
  }
  std::string s = "f=" + sh_quote(req.path) + "\noff=" + std::to_string(req.offset) +
                  "\nlim=" + std::to_string(std::max<std::size_t>(req.limit, 1)) +
                  "\nmlb=" + std::to_string(req.max_line_bytes) + "\nmtb=" + std::to_string(req.max_total_bytes) +
                  "\nbig=" + std::to_string(count_lines_below) + "\nprog=" + sh_quote(k_window_awk) + "\n";
  s += R"SH(LC_ALL=C
export LC_ALL
if [ ! -e "$f" ]; then echo "error not_found"; exit 0; fi
if [ -d "$f" ]; then echo "error directory"; exit 0; fi
if [ ! -f "$f" ]; then echo "error special"; exit 0; fi
if [ ! -r "$f" ]; then echo "error denied"; exit 0; fi
if head -c 8192 < "$f" | od -An -tx1 | grep -q ' 00'; then echo "error binary"; exit 0; fi
set -- $(wc -c < "$f")
size=$1
nonl=0
if [ "$size" -gt 0 ]; then
  last=$(tail -c 1 < "$f")
  [ -n "$last" ] && nonl=1
fi
echo "S $size $nonl"
if [ "$off" -gt 0 ]; then
  awk -v off="$off" -v lim="$lim" -v mlb="$mlb" -v mtb="$mtb" -v tailmode=0 "$prog" < "$f"
else
  tail -n "$((-off))" < "$f" | awk -v off=1 -v lim="$lim" -v mlb="$mlb" -v mtb="$mtb" -v tailmode=1 "$prog"
  if [ "$size" -le "$big" ]; then
    set -- $(wc -l < "$f")
    echo "T $1"
  fi
fi
)SH";
  return s;
}

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

std::string expand_home(const std::string& path, const std::string& home) {
  if (home.empty()) {
    return path;
  }
  if (path == "~") {
    return home;
  }
  if (path.rfind("~/", 0) == 0) {
    return home + path.substr(1);
  }
  return path;
}

} // namespace smcp::exec
