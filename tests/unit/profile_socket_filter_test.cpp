// The seccomp filter that keeps confined commands off Unix sockets (sandbox::unix_socket_filter):
// its classic BPF run by a small interpreter here for both architectures it knows (the integration
// tests load it into real bwrap on this machine's), and the launcher's fixed program handing it to
// bwrap as fd 5 from a 0600 file it deletes; a host whose bwrap cannot load it runs no profile
// that needs it, and says why.
#include "sandbox/bwrap/launcher_program.h"
#include "sandbox/bwrap/profiles.h"
#include "mcp-server/core/tool.h"
#include "sandbox/exec/run_process.h"
#include "tests/support/recording_executor.h"
#include "tools/profile_runner.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <optional>
#include <sys/socket.h>
#include <unistd.h>

namespace smcp {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct Call {
  std::uint32_t arch;
  std::uint32_t nr;
  std::uint64_t args[6] = {};
};

// Runs a classic BPF seccomp program (little-endian struct sock_filter[]) on one call, the way
// the kernel does for the instructions such a program may use; nullopt for anything else.
std::optional<std::uint32_t> run_bpf(const std::string& code, const Call& c) {
  if (code.size() % 8 != 0 || code.empty()) {
    return std::nullopt;
  }
  unsigned char data[64] = {};
  const auto put32 = [&](std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) {
      data[at + i] = static_cast<unsigned char>(v >> (8 * i));
    }
  };
  put32(0, c.nr);
  put32(4, c.arch);
  for (int i = 0; i < 6; ++i) {
    put32(16 + 8 * i, static_cast<std::uint32_t>(c.args[i]));
    put32(20 + 8 * i, static_cast<std::uint32_t>(c.args[i] >> 32));
  }
  const auto u = [&](std::size_t at) { return static_cast<unsigned char>(code[at]); };
  std::uint32_t a = 0;
  for (std::size_t pc = 0; pc * 8 < code.size(); ++pc) {
    const std::size_t at = pc * 8;
    const std::uint16_t op = static_cast<std::uint16_t>(u(at) | u(at + 1) << 8);
    const unsigned jt = u(at + 2), jf = u(at + 3);
    const std::uint32_t k = u(at + 4) | u(at + 5) << 8 | u(at + 6) << 16 | static_cast<std::uint32_t>(u(at + 7)) << 24;
    switch (op) {
    case BPF_LD | BPF_W | BPF_ABS:
      if (k + 4 > sizeof data) {
        return std::nullopt;
      }
      a = data[k] | data[k + 1] << 8 | data[k + 2] << 16 | static_cast<std::uint32_t>(data[k + 3]) << 24;
      break;
    case BPF_ALU | BPF_AND | BPF_K:
      a &= k;
      break;
    case BPF_JMP | BPF_JA:
      pc += k;
      break;
    case BPF_JMP | BPF_JEQ | BPF_K:
      pc += a == k ? jt : jf;
      break;
    case BPF_JMP | BPF_JGE | BPF_K:
      pc += a >= k ? jt : jf;
      break;
    case BPF_JMP | BPF_JSET | BPF_K:
      pc += (a & k) ? jt : jf;
      break;
    case BPF_RET | BPF_K:
      return k;
    default:
      return std::nullopt;
    }
  }
  return std::nullopt; // fell off the end: the kernel refuses such a program
}

constexpr std::uint32_t k_allow = SECCOMP_RET_ALLOW;
constexpr std::uint32_t k_eacces = SECCOMP_RET_ERRNO | EACCES;
constexpr std::uint32_t k_enosys = SECCOMP_RET_ERRNO | ENOSYS;
constexpr std::uint32_t k_kill = SECCOMP_RET_KILL_PROCESS;

struct Arch {
  std::uint32_t audit;
  std::uint32_t socket, socketpair, connect, io_uring_setup;
};
constexpr Arch k_x86_64{AUDIT_ARCH_X86_64, 41, 53, 42, 425};
constexpr Arch k_aarch64{AUDIT_ARCH_AARCH64, 198, 199, 203, 425};

TEST(ProfileSocketFilter, DeniesUnixSocketsKeepsStreamPairsAndKillsOtherArchitectures) {
  const std::string f = sandbox::unix_socket_filter();
  ASSERT_EQ(f.size() % 8, 0u);
  ASSERT_LE(f.size() / 8, 4096u / 8) << "BPF_MAXINSNS";
  for (const Arch& x : {k_x86_64, k_aarch64}) {
    const auto run = [&](std::uint32_t nr, std::uint64_t a0 = 0, std::uint64_t a1 = 0) {
      return run_bpf(f, Call{x.audit, nr, {a0, a1}});
    };
    SCOPED_TRACE(x.audit);
    EXPECT_EQ(run(x.socket, AF_UNIX, SOCK_STREAM), k_eacces);
    EXPECT_EQ(run(x.socket, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC), k_eacces);
    EXPECT_EQ(run(x.socket, 0xffffffff00000000ull | AF_UNIX, SOCK_STREAM), k_eacces)
        << "the kernel reads the domain as an int: the high half does not matter";
    EXPECT_EQ(run(x.socket, AF_INET, SOCK_STREAM), k_allow);
    EXPECT_EQ(run(x.socket, AF_INET6, SOCK_DGRAM), k_allow);
    EXPECT_EQ(run(x.socket, AF_NETLINK, SOCK_RAW), k_allow);
    EXPECT_EQ(run(x.socketpair, AF_UNIX, SOCK_STREAM), k_allow);
    EXPECT_EQ(run(x.socketpair, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK), k_allow);
    EXPECT_EQ(run(x.socketpair, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC), k_allow);
    EXPECT_EQ(run(x.socketpair, AF_UNIX, SOCK_DGRAM), k_eacces) << "a datagram pair can sendto() a path";
    EXPECT_EQ(run(x.socketpair, AF_UNIX, SOCK_RAW), k_eacces) << "AF_UNIX makes SOCK_RAW a datagram socket";
    EXPECT_EQ(run(x.io_uring_setup, 8, 0), k_enosys) << "IORING_OP_SOCKET makes sockets without socket()";
    EXPECT_EQ(run(x.connect, 3, 0), k_allow) << "what it cannot make, it cannot connect";
    EXPECT_EQ(run(0), k_allow);
    EXPECT_EQ(run(59), k_allow);
  }
  // x32 calls on x86_64 (socket is 41 | 0x40000000 there), i386 calls (int 0x80: socketcall) and
  // arm32 compat calls end the process.
  EXPECT_EQ(run_bpf(f, Call{AUDIT_ARCH_X86_64, 41 | 0x40000000u, {AF_UNIX}}), k_kill);
  EXPECT_EQ(run_bpf(f, Call{AUDIT_ARCH_X86_64, 0x40000000u, {}}), k_kill);
  EXPECT_EQ(run_bpf(f, Call{AUDIT_ARCH_I386, 102, {1}}), k_kill);
  EXPECT_EQ(run_bpf(f, Call{AUDIT_ARCH_ARM, 281, {AF_UNIX}}), k_kill);
  EXPECT_EQ(run_bpf(f, Call{AUDIT_ARCH_RISCV64, 198, {AF_INET}}), k_kill);
}

TEST(ProfileSocketFilter, TheEscapedFormDecodesToTheBytes) {
  const std::string f = sandbox::unix_socket_filter();
  const std::string e = sandbox::octal_escape(f);
  EXPECT_EQ(e.size(), f.size() * 5);
  EXPECT_EQ(e.find_first_not_of("\\01234567"), std::string::npos) << "no byte of the argument is literal";
  for (const char* shell : {"/bin/sh", "/bin/bash", "/bin/dash"}) {
    if (!fs::exists(shell)) {
      continue;
    }
    auto r = exec::run_process({shell, "-c", "printf '%b' \"$1\" | od -An -v -tx1 | tr -d ' \\n'", "sh", e}, 30s);
    std::string hex;
    for (unsigned char ch : f) {
      static const char* digits = "0123456789abcdef";
      hex += {digits[ch >> 4], digits[ch & 15]};
    }
    EXPECT_EQ(r.out, hex) << shell;
  }
}

// The launcher writes the filter into its work directory (0600), opens it as fd 5 for bwrap and
// deletes it; with `-` there is no fd 5. The stand-in for prlimit and bwrap reports what it got.
TEST(ProfileSocketFilter, TheLauncherHandsTheFilterToBwrapAsFd5) {
  char tmpl[] = "/tmp/smcp-filter-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  fs::create_directories(dir + "/bin");
  std::ofstream(dir + "/bin/fakebwrap") << "#!/bin/sh\n"
                                        << "if [ -e /proc/self/fd/5 ]; then od -An -v -tx1 <&5 | tr -d ' \\n'; echo; "
                                        << "else echo no-fd-5; fi\n"
                                        << "ls -A \"$1\"; echo end\n";
  fs::permissions(dir + "/bin/fakebwrap", fs::perms::owner_all);
  const auto launch = [&](const std::string& filter) {
    return exec::run_process({"env", "-i", "PATH=/usr/bin:/bin", "HOME=" + dir, "/bin/sh", "-c",
                              sandbox::k_launcher_program, "sh", dir + "/work", dir + "/work/exec-1", "none", filter,
                              "--", dir + "/bin/fakebwrap", dir + "/work/exec-1"},
                             30s);
  };
  const std::string f = sandbox::unix_socket_filter();
  std::string hex;
  for (unsigned char ch : f) {
    static const char* digits = "0123456789abcdef";
    hex += {digits[ch >> 4], digits[ch & 15]};
  }
  auto r = launch(sandbox::octal_escape(f));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, hex + "\nend\n") << "the filter's bytes on fd 5, its file already gone";
  r = launch("-");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "no-fd-5\nend\n");
  EXPECT_FALSE(fs::exists(dir + "/work/exec-1"));
  fs::remove_all(dir);
}

// A host whose bwrap cannot load the filter (too old, no seccomp in the kernel, another
// architecture): a profile that needs it fails closed with the reason; remote_hosts says so too.
TEST(ProfileSocketFilter, AHostThatCannotLoadTheFilterRunsNoProfileThatNeedsIt) {
  for (bool works : {false, true}) {
    testing::RecordingHost host("gpu1");
    host.recorder->answer({"/bin/sh", "-c"}, 0,
                          std::string("proc=new fd=1 setpriv= seccomp=") + (works ? "1" : "0") + " arch=riscv64\n",
                          works ? "" : "seccomp: bwrap: Unknown option --seccomp\n");
    tools::ProfileRunner runner(sandbox::default_profile_settings());
    runner.check(host);
    exec::CommandSpec spec;
    spec.command = "true";
    if (works) {
      EXPECT_NO_THROW(runner.apply(sandbox::restrictive_profile(), spec, host));
      EXPECT_EQ(runner.probe(host), "ok");
      continue;
    }
    try {
      runner.apply(sandbox::standard_profile(), spec, host);
      ADD_FAILURE() << "ran without the filter";
    } catch (const mcp::ToolError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("Unknown option --seccomp"), std::string::npos) << m;
      EXPECT_NE(m.find("riscv64"), std::string::npos) << m;
      EXPECT_NE(m.find("gpu1"), std::string::npos) << m;
    }
    EXPECT_TRUE(spec.launcher.empty());
    EXPECT_NE(runner.probe(host).find("could not load the seccomp filter"), std::string::npos);
    sandbox::Profile open = sandbox::standard_profile();
    open.unix_sockets = true;
    EXPECT_NO_THROW(runner.apply(open, spec, host)) << "a profile that keeps Unix sockets needs no filter";
  }
}

} // namespace
} // namespace smcp
