#include "tests/support/sshd_fixture.h"

#include "sandbox/exec/proc_stat.h"
#include "sandbox/exec/run_process.h"
#include "sandbox/exec/spawn.h"
#include "ssh/ssh_config.h"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sstream>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace smcp::testing {

namespace {

using namespace std::chrono_literals;
constexpr const char* k_sshd = "/usr/sbin/sshd";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void keygen(const std::string& path, const std::string& comment) {
  exec::ProcessResult r =
      exec::run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path}, 30s);
  if (r.status != 0) {
    throw std::runtime_error("ssh-keygen failed: " + r.err);
  }
}

// Starts `argv` with stdout/stderr appended to `out_path`. The child gets SIGKILL when the test
// process dies, so a crashed test leaves no sshd behind.
pid_t spawn(const std::vector<std::string>& argv, const std::string& out_path) {
  exec::CStrings args(argv);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    throw std::runtime_error("fork: " + std::string(std::strerror(errno)));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      ::_exit(1);
    }
    ::setpgid(0, 0);
    int in = ::open("/dev/null", O_RDONLY);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvp(argv[0].c_str(), args.get());
    ::_exit(127);
  }
  return pid;
}

bool port_open(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

struct ProcInfo {
  pid_t ppid = 0;
  std::string comm;
};

std::map<pid_t, ProcInfo> process_table() {
  std::map<pid_t, ProcInfo> out;
  DIR* d = ::opendir("/proc");
  if (!d) {
    return out;
  }
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (!end || *end || pid <= 0) {
      continue;
    }
    exec::ProcStat st;
    if (exec::read_proc_stat(static_cast<pid_t>(pid), st) && st.state != 'Z') {
      ProcInfo info;
      info.comm = st.comm;
      info.ppid = st.ppid;
      out[static_cast<pid_t>(pid)] = info;
    }
  }
  ::closedir(d);
  return out;
}

} // namespace

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = 0;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

std::string SshdFixture::unavailable_reason() {
  if (::access(k_sshd, X_OK) != 0) {
    return std::string(k_sshd) + " is not installed (apt-get install openssh-server; scripts/install-deps.sh --test "
                                 "does it)";
  }
  if (std::system("command -v ssh-keygen >/dev/null 2>&1 && command -v ssh >/dev/null 2>&1") != 0) {
    return "ssh and ssh-keygen (openssh-client) are not installed";
  }
  if (::geteuid() == 0) {
    ::mkdir("/run/sshd", 0755); // sshd refuses to start without its privilege separation directory
  } else if (::access("/run/sshd", F_OK) != 0) {
    return "/run/sshd does not exist and cannot be created without root";
  }
  return {};
}

SshdFixture::SshdFixture(SshdOptions options) : m_options(std::move(options)) {
  std::string reason = unavailable_reason();
  if (!reason.empty()) {
    throw std::runtime_error(reason);
  }
  char tmpl[] = "/tmp/smcp-sshd-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    throw std::runtime_error("mkdtemp failed");
  }
  m_dir = tmpl;
  if (passwd* pw = ::getpwuid(::geteuid())) {
    m_user = pw->pw_name;
  }
  keygen(client_key(), "smcp-test-client");
  keygen(wrong_key(), "smcp-test-wrong");
  {
    exec::ProcessResult r = exec::run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", encrypted_key_passphrase(),
                                               "-C", "smcp-test-encrypted", "-f", encrypted_key()},
                                              30s);
    if (r.status != 0) {
      throw std::runtime_error("ssh-keygen failed: " + r.err);
    }
  }
  keygen(m_dir + "/other_hostkey", "smcp-test-other-host");
  std::ofstream(m_dir + "/authorized_keys") << read_file(client_key() + ".pub") << read_file(encrypted_key() + ".pub");
  m_servers.resize(static_cast<std::size_t>(m_options.servers));
  std::string known;
  for (int i = 0; i < m_options.servers; ++i) {
    auto& s = m_servers[static_cast<std::size_t>(i)];
    s.host_key = m_dir + "/hostkey" + std::to_string(i);
    keygen(s.host_key, "smcp-test-host" + std::to_string(i));
    s.port = free_port();
    start(i);
    known += known_hosts_line(i);
  }
  write_known_hosts(m_options.trust_host_keys ? known : "");
  write_config();
}

SshdFixture::~SshdFixture() {
  for (int i = 0; i < static_cast<int>(m_servers.size()); ++i) {
    thaw(i);
    kill(i);
  }
  if (m_agent > 0) {
    ::kill(m_agent, SIGKILL);
    ::waitpid(m_agent, nullptr, 0);
  }
  std::error_code ec;
  std::filesystem::remove_all(m_dir, ec);
}

void SshdFixture::start(int i) {
  auto& s = m_servers[static_cast<std::size_t>(i)];
  const std::string n = std::to_string(i);
  std::vector<std::string> extra;
  for (const auto& o : m_options.sshd_options) {
    extra.push_back("-o");
    extra.push_back(o);
  }
  std::vector<std::string> argv{k_sshd,
                                "-D",
                                "-f",
                                "/dev/null",
                                "-h",
                                s.host_key,
                                "-p",
                                std::to_string(s.port),
                                "-E",
                                m_dir + "/sshd" + n + ".log",
                                "-o",
                                "ListenAddress=127.0.0.1",
                                "-o",
                                "PidFile=" + m_dir + "/sshd" + n + ".pid",
                                "-o",
                                "AuthorizedKeysFile=" + m_dir + "/authorized_keys",
                                "-o",
                                "UsePAM=no",
                                "-o",
                                "StrictModes=no",
                                "-o",
                                "PasswordAuthentication=no",
                                "-o",
                                "KbdInteractiveAuthentication=no",
                                "-o",
                                "PermitRootLogin=prohibit-password",
                                "-o",
                                "AllowTcpForwarding=yes",
                                "-o",
                                "MaxStartups=" + m_options.max_startups,
                                "-o",
                                "MaxSessions=" + std::to_string(m_options.max_sessions),
                                "-o",
                                "MaxAuthTries=10",
                                "-o",
                                "LogLevel=" + m_options.log_level,
                                "-o",
                                std::string(m_options.source_bashrc ? "SetEnv=SMCP_TEST_SSHD=1" : "SetEnv=SHLVL=1") +
                                    (m_options.set_env.empty() ? "" : " " + m_options.set_env)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  s.pid = spawn(argv, m_dir + "/sshd" + n + ".out");
  for (int tries = 0; tries < 500; ++tries) {
    if (port_open(s.port)) {
      return;
    }
    int st = 0;
    if (::waitpid(s.pid, &st, WNOHANG) == s.pid) {
      s.pid = -1;
      throw std::runtime_error("sshd " + n + " exited at start: " + read_file(m_dir + "/sshd" + n + ".out") + log(i));
    }
    std::this_thread::sleep_for(10ms);
  }
  throw std::runtime_error("sshd " + n + " did not listen on port " + std::to_string(s.port));
}

std::vector<pid_t> SshdFixture::server_processes(int i) const {
  const auto& s = m_servers[static_cast<std::size_t>(i)];
  std::vector<pid_t> out;
  if (s.pid <= 0) {
    return out;
  }
  auto table = process_table();
  std::vector<pid_t> frontier{s.pid};
  out.push_back(s.pid);
  while (!frontier.empty()) {
    pid_t parent = frontier.back();
    frontier.pop_back();
    for (const auto& [pid, info] : table) {
      if (info.ppid == parent && info.comm.rfind("sshd", 0) == 0) {
        out.push_back(pid);
        frontier.push_back(pid);
      }
    }
  }
  return out;
}

void SshdFixture::kill(int i) {
  auto& s = m_servers[static_cast<std::size_t>(i)];
  if (s.pid <= 0) {
    return;
  }
  for (pid_t p : server_processes(i)) {
    ::kill(p, SIGKILL);
  }
  ::waitpid(s.pid, nullptr, 0);
  s.pid = -1;
  for (int tries = 0; tries < 200 && port_open(s.port); ++tries) {
    std::this_thread::sleep_for(10ms);
  }
}

void SshdFixture::restart(int i) {
  kill(i);
  start(i);
}

void SshdFixture::freeze(int i) {
  for (pid_t p : server_processes(i)) {
    ::kill(p, SIGSTOP);
  }
}

void SshdFixture::thaw(int i) {
  for (pid_t p : server_processes(i)) {
    ::kill(p, SIGCONT);
  }
}

std::string SshdFixture::host_key_pub(int i) const {
  std::istringstream in(read_file(m_servers[static_cast<std::size_t>(i)].host_key + ".pub"));
  std::string type, key;
  in >> type >> key;
  return type + " " + key;
}

std::string SshdFixture::log(int i) const {
  return read_file(m_dir + "/sshd" + std::to_string(i) + ".log");
}

std::string SshdFixture::known_hosts_line(int i) const {
  return "[127.0.0.1]:" + std::to_string(port(i)) + " " + host_key_pub(i) + "\n";
}

std::string SshdFixture::wrong_known_hosts_line(int i) const {
  std::istringstream in(read_file(m_dir + "/other_hostkey.pub"));
  std::string type, key;
  in >> type >> key;
  return "[127.0.0.1]:" + std::to_string(port(i)) + " " + type + " " + key + "\n";
}

void SshdFixture::write_known_hosts(const std::string& content) const {
  std::ofstream(known_hosts(), std::ios::trunc) << content;
}

void SshdFixture::write_config() const {
  std::ostringstream c;
  auto common = [&](int port, const std::string& key) {
    c << "  HostName 127.0.0.1\n  Port " << port << "\n  User " << m_user << "\n  IdentityFile " << key
      << "\n  IdentitiesOnly yes\n  UserKnownHostsFile " << known_hosts()
      << "\n  GlobalKnownHostsFile /dev/null\n  BatchMode yes\n  ConnectTimeout 5\n  LogLevel ERROR\n";
  };
  for (int i = 0; i < static_cast<int>(m_servers.size()); ++i) {
    c << "Host " << alias(i) << "\n";
    common(port(i), client_key());
  }
  const int last = static_cast<int>(m_servers.size()) - 1;
  c << "Host jumped\n";
  common(port(last), client_key());
  c << "  ProxyJump " << alias(0) << "\n";
  c << "Host wrongkey\n";
  common(port(0), wrong_key());
  c << "Host enckey\n";
  common(port(0), encrypted_key());
  c << "Host strict\n";
  common(port(0), client_key());
  c << "  StrictHostKeyChecking yes\n";
  c << "Host fastalive\n";
  common(port(0), client_key());
  c << "  ServerAliveInterval 1\n  ServerAliveCountMax 2\n";
  c << "Host agent\n  HostName 127.0.0.1\n  Port " << port(0) << "\n  User " << m_user << "\n  IdentityAgent " << m_dir
    << "/agent.sock\n  IdentityFile " << m_dir << "/no_such_key\n  UserKnownHostsFile " << known_hosts()
    << "\n  GlobalKnownHostsFile /dev/null\n";
  std::ofstream(config_file(), std::ios::trunc) << c.str();
  ::chmod(config_file().c_str(), 0600);
}

std::string SshdFixture::agent_socket() {
  const std::string sock = m_dir + "/agent.sock";
  if (m_agent > 0) {
    return sock;
  }
  m_agent = spawn({"ssh-agent", "-D", "-a", sock}, m_dir + "/agent.out");
  for (int tries = 0; tries < 300 && ::access(sock.c_str(), F_OK) != 0; ++tries) {
    std::this_thread::sleep_for(10ms);
  }
  // The socket exists from ssh-agent's bind(); until its listen(), connecting is refused.
  exec::ProcessResult r;
  for (int tries = 0; tries < 100; ++tries) {
    r = exec::run_process({"/bin/sh", "-c", "SSH_AUTH_SOCK=\"$1\" ssh-add -q \"$2\"", "sh", sock, client_key()}, 30s);
    if (r.status == 0 || r.err.find("Connection refused") == std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  if (r.status != 0) {
    throw std::runtime_error("ssh-add failed: " + r.err);
  }
  return sock;
}

int SshdFixture::ssh_cli(const std::string& alias_name, const std::string& command, std::string* output) const {
  exec::ProcessResult r = exec::run_process({"ssh", "-F", config_file(), alias_name, command}, 60s);
  if (output) {
    *output = r.out + r.err;
  }
  return r.status;
}

} // namespace smcp::testing
