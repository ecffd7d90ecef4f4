#include "sandbox/workspace.h"

#include <cctype>
#include <cstdlib>
#include <ctime>
#include <sstream>

namespace smcp::sandbox {

namespace {

// Fixed programs: values are positional parameters, never part of the program text.
std::vector<std::string> sh(const char* program, std::vector<std::string> args) {
  std::vector<std::string> a = {"sh", "-c", program, "sh"};
  a.insert(a.end(), args.begin(), args.end());
  return a;
}

// Every fetch from a sandbox: the other end is untrusted, so objects are checked, and nothing of
// it is written but the refs named.
std::vector<std::string> fetch_from(const std::string& top, const std::string& url) {
  return {"git",
          "-C",
          top,
          "-c",
          "protocol.ext.allow=always",
          "-c",
          "fetch.fsckObjects=true",
          "-c",
          "transfer.fsckObjects=true",
          "fetch",
          "--quiet",
          "--no-tags",
          "--no-write-fetch-head",
          "--no-recurse-submodules",
          "--no-auto-gc",
          url};
}

} // namespace

std::vector<std::string> prepare_worktrees_dir_argv(const std::string& dir) {
  return sh("umask 077; if [ -L \"$1\" ]; then echo \"$1 is a symbolic link\" >&2; exit 3; fi; "
            "mkdir -p -- \"$1\" || exit 3; "
            "if [ ! -d \"$1\" ] || [ -L \"$1\" ] || [ ! -O \"$1\" ]; then "
            "echo \"$1 is not a directory of ours\" >&2; exit 3; fi; chmod 0700 -- \"$1\"",
            {dir});
}

std::vector<std::string> objects_probe_argv(const std::string& objects) {
  return sh("if [ -e \"$1/info/alternates\" ]; then echo alternates; fi; "
            "find \"$1\" ! -perm -o=r -print -quit 2>/dev/null",
            {objects});
}

std::vector<std::string> clone_argv(const std::string& top, const std::string& dir, const std::string& branch,
                                    bool shared) {
  return {"git",      "-c",      "protocol.file.allow=always",
          "clone",    "--quiet", shared ? "--shared" : "--no-local",
          "--branch", branch,    "--",
          top,        dir};
}

std::vector<std::string> remove_tree_argv(const std::string& dir) {
  return sh("if [ -L \"$1\" ]; then echo \"$1 is a symbolic link: not removed\" >&2; exit 3; fi; "
            "if [ ! -e \"$1\" ]; then exit 0; fi; exec rm -rf --one-file-system -- \"$1\"",
            {dir});
}

std::vector<std::string> move_aside_argv(const std::string& dir, const std::string& to) {
  return {"mv", "-T", "--", dir, to};
}

std::string id_file(const std::string& worktrees_dir, const std::string& name) {
  return worktrees_dir + "/." + name + ".sandbox-id";
}

std::vector<std::string> write_id_argv(const std::string& path, const std::string& uid) {
  // noclobber: never over another sandbox's id file (another registry's sandbox of that name).
  return sh("umask 077; set -C; if ! printf '%s\\n' \"$2\" > \"$1\"; then echo \"$1 exists: a sandbox of that name "
            "(another registry's, or one left over) is there\" >&2; exit 3; fi",
            {path, uid});
}

std::vector<std::string> remove_id_argv(const std::string& path, const std::string& uid) {
  return sh("[ -f \"$1\" ] && [ ! -L \"$1\" ] && [ \"$(cat -- \"$1\")\" = \"$2\" ] && rm -f -- \"$1\"; true",
            {path, uid});
}

std::vector<std::string> read_id_argv(const std::string& path) {
  return sh("[ -f \"$1\" ] && [ ! -L \"$1\" ] && cat -- \"$1\"", {path});
}

std::string ext_url(const std::vector<std::string>& argv) {
  std::string url = "ext::";
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (i) {
      url += ' ';
    }
    for (char c : argv[i]) {
      if (c == '%' || c == ' ') {
        url += '%';
      }
      url += c;
    }
  }
  return url;
}

std::string mirror_prefix(const std::string& name) {
  return "refs/remotes/sandbox/" + name + "/";
}

std::string head_ref(const std::string& name) {
  return "refs/sandbox/" + name + "/HEAD";
}

std::string all_refs_prefix(const std::string& name) {
  return "refs/sandbox/" + name + "/refs/";
}

std::string rescue_prefix(const std::string& name, const std::string& stamp) {
  return "refs/sandbox-rescue/" + name + "/" + stamp + "/";
}

std::vector<std::string> fetch_mirror_argv(const std::string& top, const std::string& url, const std::string& name,
                                           bool with_head) {
  auto a = fetch_from(top, url);
  // Pruned: what the sandbox deleted or renamed goes here too (fix -> fix/sub would otherwise
  // clash for good); what the host held before the fetch was kept first (SandboxManager::fetch_work).
  a.insert(a.end() - 1, "--prune");
  a.push_back("+refs/heads/*:" + mirror_prefix(name) + "*");
  a.push_back("+refs/*:" + all_refs_prefix(name) + "*");
  if (with_head) {
    a.push_back("+HEAD:" + head_ref(name));
  }
  return a;
}

std::vector<std::string> fast_forward_argv(const std::string& top, const std::string& name, const std::string& branch) {
  return {"git",     "-C",
          top,       "fetch",
          "--quiet", "--no-write-fetch-head",
          ".",       mirror_prefix(name) + branch + ":refs/heads/" + branch};
}

std::vector<std::string> fetch_rescue_argv(const std::string& top, const std::string& url, const std::string& prefix) {
  auto a = fetch_from(top, url);
  a.push_back("+refs/smcp-rescue/*:" + prefix + "*");
  return a;
}

std::vector<std::string> list_refs_argv(const std::string& top, const std::string& prefix) {
  return {"git", "-C", top, "for-each-ref", "--format=%(objectname) %(refname)", "--", prefix};
}

std::vector<std::string> delete_refs_argv(const std::string& top) {
  return {"git", "-C", top, "update-ref", "--stdin"};
}

std::vector<std::string> unmerged_count_argv(const std::string& top, const std::vector<std::string>& shas) {
  std::vector<std::string> a = {"git", "-C", top, "rev-list", "--count"};
  a.insert(a.end(), shas.begin(), shas.end());
  a.push_back("--not");
  a.push_back("--branches");
  a.push_back("--");
  return a;
}

std::vector<std::string> host_unmerged_argv(const std::string& top, const std::string& name) {
  return {"git",
          "-C",
          top,
          "rev-list",
          "--count",
          "--exclude=refs/sandbox/" + name + "/refs/remotes/*",
          "--exclude=refs/sandbox/" + name + "/old/*",
          "--glob=refs/sandbox/" + name + "/*",
          "--glob=" + mirror_prefix(name) + "*",
          "--not",
          "--branches",
          "--"};
}

std::vector<std::string> ls_remote_argv(const std::string& top, const std::string& url) {
  return {"git", "-C", top, "-c", "protocol.ext.allow=always", "ls-remote", url};
}

std::vector<std::string> only_old_argv(const std::string& top, const std::string& name) {
  const std::string ns = "refs/sandbox/" + name + "/";
  return {"git",
          "-C",
          top,
          "rev-list",
          "--count",
          "--glob=" + ns + "old/*",
          "--not",
          "--branches",
          "--exclude=" + ns + "old/*",
          "--glob=" + ns + "*",
          "--glob=" + mirror_prefix(name) + "*",
          "--"};
}

std::vector<std::string> have_objects_argv(const std::string& top) {
  return {"git", "-C", top, "cat-file", "--batch-check"};
}

std::vector<std::string> inspect_argv() {
  // Linked worktrees' HEADs are no refs: each is pinned as refs/smcp-worktrees/N (so the fetch
  // brings it too) and its uncommitted entries counted. Every failure of git makes the answer
  // unknown, never clean: the status goes to a file first, and its exit status is said.
  return sh("cd /workspace 2>/dev/null || { echo 'NOWORKSPACE /workspace is gone'; exit 0; }; "
            "git rev-parse --git-dir >/dev/null 2>&1 || { echo 'NOWORKSPACE /workspace is not a git repository'; "
            "exit 0; }; "
            "t=$(mktemp) || { echo 'NOWORKSPACE no temporary file in the sandbox'; exit 0; }; trap 'rm -f \"$t\"' "
            "EXIT; "
            "n=0; git for-each-ref --format='%(refname)' refs/smcp-worktrees | while read -r r; do git update-ref -d "
            "\"$r\"; done; "
            "git worktree list --porcelain 2>/dev/null | { while read -r k v; do "
            "case \"$k\" in worktree) p=$v;; HEAD) if [ \"$p\" != /workspace ]; then n=$((n+1)); "
            "git update-ref \"refs/smcp-worktrees/$n\" \"$v\" 2>/dev/null; "
            "c=$(git -C \"$p\" status --porcelain --untracked-files=all 2>/dev/null | wc -l); "
            "printf 'WTDIRTY %s\\n' \"$c\"; fi;; esac; done; }; "
            "printf 'HEAD %s\\n' \"$(git rev-parse -q --verify HEAD 2>/dev/null)\"; "
            "printf 'ON %s\\n' \"$(git symbolic-ref -q HEAD 2>/dev/null)\"; "
            "git for-each-ref '--format=REF %(objectname) %(refname)' > \"$t\"; printf 'REFSRC %s\\n' $?; "
            "printf 'REFCOUNT %s\\n' \"$(grep -c . \"$t\")\"; "
            "grep -v ' refs/remotes/' \"$t\" | head -n 20000; "
            "git status --porcelain=v1 -z --untracked-files=all > \"$t\" 2>/dev/null; printf 'STATUSRC %s\\n' $?; "
            "printf 'STATUS\\n'; head -c 4000000 \"$t\"",
            {});
}

std::vector<std::string> rescue_argv(const std::string& name) {
  return sh("cd /workspace || exit 3; set -e; "
            "git for-each-ref --format='%(refname)' refs/smcp-rescue | while read -r r; do git update-ref -d \"$r\"; "
            "done; "
            "git for-each-ref --format='%(objectname) %(refname)' | while read -r o r; do case \"$r\" in "
            "refs/remotes/*|refs/smcp-rescue/*) ;; *) git update-ref \"refs/smcp-rescue/${r#refs/}\" \"$o\";; esac; "
            "done; "
            "h=$(git rev-parse -q --verify HEAD || true); "
            "if [ -n \"$h\" ]; then git update-ref refs/smcp-rescue/HEAD \"$h\"; fi; "
            "i=$(mktemp); trap 'rm -f \"$i\"' EXIT; "
            "if [ -f \"$(git rev-parse --git-path index)\" ]; then cp \"$(git rev-parse --git-path index)\" \"$i\"; "
            "else rm -f \"$i\"; fi; "
            "export GIT_INDEX_FILE=\"$i\"; git add -A; t=$(git write-tree); "
            "c=$(git -c user.name=sandbox-mcp -c user.email=sandbox-mcp@localhost commit-tree \"$t\" "
            "${h:+-p \"$h\"} -m \"sandbox-mcp: uncommitted work of sandbox $1\"); "
            "git update-ref refs/smcp-rescue/worktree \"$c\"",
            {name});
}

bool is_object_name(const std::string& s) {
  if (s.size() != 40 && s.size() != 64) {
    return false;
  }
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && (c < 'a' || c > 'f')) {
      return false;
    }
  }
  return true;
}

WorkStatus parse_inspect(const std::string& out) {
  WorkStatus w;
  const std::string marker = "STATUS\n";
  std::size_t status_at = out.find("\n" + marker);
  std::string head_part = status_at == std::string::npos ? out : out.substr(0, status_at + 1);
  if (out.rfind("NOWORKSPACE ", 0) == 0) {
    w.why_unknown = out.substr(12, out.find('\n') == std::string::npos ? std::string::npos : out.find('\n') - 12);
    return w;
  }
  if (status_at == std::string::npos && out.rfind(marker, 0) != 0) {
    w.why_unknown = "the sandbox did not answer the check";
    return w;
  }
  std::string failed;
  std::istringstream lines(head_part);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("HEAD ", 0) == 0) {
      w.head = line.substr(5);
      if (!w.head.empty() && !is_object_name(w.head)) {
        w.head.clear();
      }
    } else if (line.rfind("REFSRC ", 0) == 0 || line.rfind("STATUSRC ", 0) == 0) {
      if (line.substr(line.find(' ') + 1) != "0") {
        failed = line.substr(0, line.find(' ')) == "REFSRC" ? "git for-each-ref failed in the sandbox"
                                                            : "git status failed in the sandbox";
      }
    } else if (line.rfind("REFCOUNT ", 0) == 0) {
      w.ref_count = std::atol(line.c_str() + 9);
    } else if (line.rfind("WTDIRTY ", 0) == 0) {
      w.changed += std::atoi(line.c_str() + 8);
    } else if (line.rfind("ON refs/heads/", 0) == 0) {
      w.head_branch = line.substr(14);
    } else if (line.rfind("REF ", 0) == 0) {
      std::string rest = line.substr(4);
      auto sp = rest.find(' ');
      if (sp == std::string::npos || !is_object_name(rest.substr(0, sp)) || rest.compare(sp + 1, 5, "refs/") != 0) {
        continue;
      }
      w.refs.emplace_back(rest.substr(sp + 1), rest.substr(0, sp));
      if (rest.compare(sp + 1, 11, "refs/heads/") == 0) {
        w.branches.emplace_back(rest.substr(sp + 12), rest.substr(0, sp));
      }
    }
  }
  std::string z =
      status_at == std::string::npos ? out.substr(marker.size()) : out.substr(status_at + 1 + marker.size());
  w.truncated = z.size() >= 4000000;
  std::size_t i = 0;
  while (i < z.size()) {
    std::size_t end = z.find('\0', i);
    if (end == std::string::npos) {
      break; // a cut entry
    }
    std::string entry = z.substr(i, end - i);
    i = end + 1;
    if (entry.size() < 4) {
      continue;
    }
    if (entry.compare(0, 3, "?? ") == 0) {
      ++w.untracked;
    } else if (entry.compare(0, 3, "!! ") != 0) {
      ++w.changed;
      if (entry[0] == 'R' || entry[0] == 'C') {
        std::size_t next = z.find('\0', i); // a rename's or copy's source path follows
        i = next == std::string::npos ? z.size() : next + 1;
      }
    }
  }
  if (!failed.empty()) {
    w.why_unknown = failed;
    w.changed = w.untracked = 0;
    return w;
  }
  if (w.ref_count > k_max_refs) {
    w.why_unknown = std::to_string(w.ref_count) + " refs (more than " + std::to_string(k_max_refs) +
                    " are not brought over: rm with force moves its directory aside)";
    return w;
  }
  w.known = true;
  return w;
}

std::vector<std::string> WorkStatus::tips() const {
  std::vector<std::string> out;
  for (const auto& [ref, sha] : refs) {
    if (ref.rfind("refs/remotes/", 0) != 0) {
      out.push_back(sha);
    }
  }
  if (!head.empty()) {
    out.push_back(head);
  }
  return out;
}

std::string WorkStatus::state() const {
  if (!known) {
    return "unknown";
  }
  if (changed > 0 || untracked > 0) {
    return "dirty";
  }
  return unmerged > 0 ? "unmerged" : "clean";
}

std::string WorkStatus::summary() const {
  if (!known) {
    return "unknown (" + why_unknown + ")";
  }
  std::vector<std::string> parts;
  auto count = [&](int n, const char* one, const char* many) {
    if (n > 0) {
      parts.push_back(std::to_string(n) + (truncated ? "+ " : " ") + (n == 1 ? one : many));
    }
  };
  count(changed, "changed file", "changed files");
  count(untracked, "untracked file", "untracked files");
  if (unmerged > 0) {
    parts.push_back(std::to_string(unmerged) + (unmerged == 1 ? " commit" : " commits") +
                    " on no branch of the repository");
  }
  if (parts.empty()) {
    return "clean";
  }
  std::string s;
  for (const auto& p : parts) {
    s += (s.empty() ? "" : ", ") + p;
  }
  return s;
}

std::string utc_stamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

} // namespace smcp::sandbox
