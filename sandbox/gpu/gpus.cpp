#include "sandbox/gpu/gpus.h"

#include "mcp-server/base/text.h"
#include "sandbox/exec/quote.h"
#include "sandbox/registry.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>
#include <stdexcept>

namespace smcp::sandbox {

namespace {

constexpr const char* k_forms = "give \"all\", \"none\", a count (\"2\") or device indices (\"0,2\")";

bool digits(const std::string& s) {
  return !s.empty() && s.size() <= 4 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Spaces and tabs only (the forms a person types).
std::string trim(const std::string& s) {
  return text::trim(s, " \t");
}

} // namespace

std::string GpuRequest::text() const {
  switch (kind) {
  case Kind::none:
    return "none";
  case Kind::all:
    return "all";
  case Kind::count:
    return std::to_string(count);
  case Kind::list:
    return join_indices(indices);
  }
  return "none";
}

GpuRequest parse_gpus(const std::string& raw, bool shared) {
  const std::string text = trim(raw);
  GpuRequest r;
  r.shared = shared;
  if (text.empty() || text == "none") {
    return r;
  }
  if (text == "all") {
    r.kind = GpuRequest::Kind::all;
    return r;
  }
  if (text.find(',') == std::string::npos) {
    if (!digits(text)) {
      throw std::invalid_argument("invalid gpus '" + raw + "': " + k_forms);
    }
    r.count = std::stoi(text);
    r.kind = r.count == 0 ? GpuRequest::Kind::none : GpuRequest::Kind::count;
    return r;
  }
  std::set<int> seen;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    part = trim(part);
    if (!digits(part)) {
      throw std::invalid_argument("invalid gpus '" + raw + "': " + k_forms);
    }
    seen.insert(std::stoi(part));
  }
  r.kind = GpuRequest::Kind::list;
  r.indices.assign(seen.begin(), seen.end());
  return r;
}

std::string join_indices(const std::vector<int>& indices) {
  std::string out;
  for (int i : indices) {
    out += (out.empty() ? "" : ",") + std::to_string(i);
  }
  return out;
}

std::vector<int> split_indices(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    part = trim(part);
    if (digits(part)) {
      out.push_back(std::stoi(part));
    }
  }
  return out;
}

std::string gpu_probe_script(const std::string& cdi_kind, bool check_docker, const std::string& dev_dir,
                             const std::vector<std::string>& cdi_dirs) {
  // Device names are read from the CDI specs (YAML or JSON, as nvidia-ctk writes them): in a file
  // whose kind is ours, each `name:` entry (not hookName, not the kind line) is a device.
  std::string s = "kind=" + exec::sh_quote(cdi_kind) + "\ndev=" + exec::sh_quote(dev_dir) + "\nset --";
  for (const auto& d : cdi_dirs) {
    s += " " + exec::sh_quote(d);
  }
  s += "\n";
  s += R"(for f in "$dev"/nvidia*; do
  n=${f##*/nvidia}
  case $n in ''|*[!0-9]*) continue ;; esac
  [ -c "$f" ] && echo "dev $n"
done
for d in "$@"; do for f in "$d"/*.yaml "$d"/*.yml "$d"/*.json; do
  [ -r "$f" ] || continue
  grep -Eq "\"?kind\"?[[:space:]]*:[[:space:]]*\"?$kind\"?" "$f" 2>/dev/null || continue
  echo "file $f"
  sed -n 's/^[[:space:]-]*"\{0,1\}name"\{0,1\}[[:space:]]*:[[:space:]]*"\{0,1\}\([^",}[:space:]]*\).*/cdi \1/p' "$f"
done; done
)";
  if (check_docker) {
    s += "docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '\"nvidia\"' && echo docker-nvidia\n";
    // An engine older than 25 (Debian 12's docker.io is 20.10), or one with CDI off, lists no spec
    // directory: a `--device KIND=N` would reach it as a request for a "cdi" driver it lacks.
    s += "docker info --format '{{json .CDISpecDirs}}' 2>/dev/null | grep -q '\"/' && echo docker-cdi\n";
  }
  return s + "exit 0\n";
}

HostGpus parse_gpu_probe(const std::string& out) {
  HostGpus h;
  std::set<int> devs;
  std::set<std::string> cdi;
  std::stringstream ss(out);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.rfind("dev ", 0) == 0 && digits(line.substr(4))) {
      devs.insert(std::stoi(line.substr(4)));
    } else if (line.rfind("cdi ", 0) == 0 && line.size() > 4) {
      cdi.insert(line.substr(4));
    } else if (line.rfind("file ", 0) == 0) {
      h.cdi_files.push_back(line.substr(5));
    } else if (line == "docker-nvidia") {
      h.docker_nvidia = true;
    } else if (line == "docker-cdi") {
      h.docker_cdi = true;
    }
  }
  h.devices.assign(devs.begin(), devs.end());
  h.cdi_devices.assign(cdi.begin(), cdi.end());
  return h;
}

std::vector<int> allocate_gpus(const GpuRequest& request, const std::vector<int>& devices,
                               const std::vector<int>& held_exclusive, const std::vector<int>& held_shared,
                               const std::string& host) {
  using Kind = GpuRequest::Kind;
  if (!request.any()) {
    return {};
  }
  if (devices.empty()) {
    throw SandboxError(SandboxError::Kind::invalid,
                       "no NVIDIA GPU on " + host + " (no /dev/nvidiaN device): ask for gpus \"none\" there", "gpus");
  }
  const std::set<int> exclusive(held_exclusive.begin(), held_exclusive.end());
  const std::set<int> shared(held_shared.begin(), held_shared.end());
  auto free_for_us = [&](int d) { return !exclusive.count(d) && (request.shared || !shared.count(d)); };
  auto held_note = [&] {
    std::string s;
    for (int d : devices) {
      if (exclusive.count(d) || shared.count(d)) {
        s += (s.empty() ? "" : ", ") + std::to_string(d) + (exclusive.count(d) ? "" : " (shared)");
      }
    }
    return s.empty() ? std::string("none") : s;
  };
  std::vector<int> out;
  switch (request.kind) {
  case Kind::none:
    return {};
  case Kind::all:
    for (int d : devices) {
      if (!free_for_us(d)) {
        throw SandboxError(SandboxError::Kind::invalid,
                           "gpus \"all\": GPUs held by other sandboxes on " + host + ": " + held_note() +
                               "; ask for a count or free indices, or shared: true to share non-exclusive ones",
                           "gpus");
      }
    }
    return devices;
  case Kind::count:
    for (int d : devices) {
      if (static_cast<int>(out.size()) < request.count && free_for_us(d)) {
        out.push_back(d);
      }
    }
    if (static_cast<int>(out.size()) < request.count) {
      throw SandboxError(SandboxError::Kind::invalid,
                         "gpus " + std::to_string(request.count) + ": " + host + " has " +
                             std::to_string(devices.size()) + " GPU(s) (" + join_indices(devices) +
                             ") and other sandboxes hold " + held_note() + "; only " + std::to_string(out.size()) +
                             " free",
                         "gpus");
    }
    return out;
  case Kind::list:
    for (int d : request.indices) {
      if (std::find(devices.begin(), devices.end(), d) == devices.end()) {
        throw SandboxError(SandboxError::Kind::invalid,
                           "gpus \"" + request.text() + "\": " + host + " has no GPU " + std::to_string(d) +
                               " (it has " + join_indices(devices) + ")",
                           "gpus");
      }
      if (!free_for_us(d)) {
        throw SandboxError(SandboxError::Kind::invalid,
                           "gpus \"" + request.text() + "\": GPU " + std::to_string(d) + " on " + host +
                               " is held by another sandbox (held: " + held_note() +
                               "); pick another, or shared: true when both sandboxes may share it",
                           "gpus");
      }
    }
    return request.indices;
  }
  return out;
}

std::vector<GpuStatus> parse_nvidia_smi(const std::string& csv) {
  std::vector<GpuStatus> out;
  std::stringstream lines(csv);
  std::string line;
  auto number = [](const std::string& f) -> long {
    const std::string t = trim(f);
    return !t.empty() && t.size() < 12 && t.find_first_not_of("0123456789") == std::string::npos ? std::stol(t) : -1;
  };
  while (std::getline(lines, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string part;
    while (std::getline(ss, part, ',')) {
      f.push_back(part);
    }
    if (f.size() != 5 || number(f[0]) < 0) {
      continue;
    }
    GpuStatus g;
    g.index = static_cast<int>(number(f[0]));
    g.name = trim(f[1]);
    g.memory_used_mib = number(f[2]);
    g.memory_total_mib = number(f[3]);
    g.utilization_pct = number(f[4]);
    out.push_back(g);
  }
  return out;
}

std::vector<std::string> gpu_run_args(Runtime runtime, const std::vector<int>& indices, const HostGpus& host,
                                      const std::string& cdi_kind, const std::string& host_name) {
  if (indices.empty()) {
    return {};
  }
  std::vector<std::string> out;
  const bool cdi_has_all = std::all_of(indices.begin(), indices.end(), [&](int i) {
    return std::find(host.cdi_devices.begin(), host.cdi_devices.end(), std::to_string(i)) != host.cdi_devices.end();
  });
  const bool cdi_usable = runtime != Runtime::docker || host.docker_cdi;
  if (cdi_has_all && cdi_usable) {
    for (int i : indices) {
      out.push_back("--device");
      out.push_back(cdi_kind + "=" + std::to_string(i));
    }
    return out;
  }
  if (runtime == Runtime::docker && host.docker_nvidia) {
    return {"--gpus", "\"device=" + join_indices(indices) + "\""};
  }
  std::string why =
      cdi_has_all ? "docker's engine there does not read CDI specs (it needs docker 25 or later with CDI on; Debian "
                    "12's docker.io is 20.10)"
      : host.cdi_files.empty()
          ? "no CDI spec of kind " + cdi_kind + " in /etc/cdi or /var/run/cdi"
          : "the CDI specs (" + host.cdi_files.front() + ") name no device " + join_indices(indices);
  throw SandboxError(
      SandboxError::Kind::missing,
      "cannot give GPUs to a container on " + host_name + ": " + why +
          (runtime == Runtime::docker ? " and docker has no nvidia runtime" : "") +
          "; install nvidia-container-toolkit and run `sudo nvidia-ctk cdi generate "
          "--output=/etc/cdi/nvidia.yaml` there" +
          (runtime == Runtime::docker ? " (or `sudo nvidia-ctk runtime configure --runtime=docker`)" : ""));
}

namespace {

// "2026-12-07 19:44:43.257857912 +0000 UTC" (podman) or "2026-12-07T19:44:43.25785791Z" (docker):
// the date and time digits, then the fraction padded to nanoseconds, comparable as text.
std::string created_key(const std::string& text) {
  std::vector<std::string> groups;
  std::string cur;
  for (char c : text) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      cur += c;
    } else if (!cur.empty()) {
      groups.push_back(cur);
      cur.clear();
    }
    if (c == '+' || c == 'Z' || (c == '-' && groups.size() >= 6)) {
      break; // the zone: the same on one host
    }
  }
  if (!cur.empty()) {
    groups.push_back(cur);
  }
  std::string key;
  for (std::size_t i = 0; i < 6 && i < groups.size(); ++i) {
    const std::size_t width = i == 0 ? 4 : 2;
    key += std::string(groups[i].size() < width ? width - groups[i].size() : 0, '0') + groups[i];
  }
  std::string frac = groups.size() > 6 ? groups[6] : "";
  frac.resize(9, '0');
  return key + frac;
}

// A holder's kind label against ours: containers made before the label existed hold the default kind.
bool same_kind(std::string label, const std::string& cdi_kind) {
  if (label == "<no value>") {
    label.clear();
  }
  return (label.empty() ? std::string(k_default_cdi_kind) : label) == cdi_kind;
}

} // namespace

std::vector<std::string> gpu_labels_of_kind(const std::string& holders, const std::string& cdi_kind) {
  std::vector<std::string> out;
  std::istringstream in(holders);
  for (std::string line; std::getline(in, line);) {
    auto a = line.find('|');
    auto b = a == std::string::npos ? a : line.find('|', a + 1);
    if (b != std::string::npos && same_kind(line.substr(b + 1), cdi_kind)) {
      out.push_back(line.substr(a + 1, b - a - 1));
    }
  }
  return out;
}

std::string gpu_race_loser(const std::string& mine, const std::string& holders, const std::string& cdi_kind) {
  struct Holder {
    std::string name, key;
    std::vector<int> gpus;
    bool shared = false;
  };
  std::vector<Holder> all;
  std::istringstream in(holders);
  for (std::string line; std::getline(in, line);) {
    auto a = line.find('|');
    auto b = a == std::string::npos ? a : line.find('|', a + 1);
    if (b == std::string::npos) {
      continue;
    }
    Holder h;
    h.name = line.substr(0, a);
    if (!h.name.empty() && h.name[0] == '/') {
      h.name.erase(0, 1); // docker's names start with '/'
    }
    std::string label = line.substr(a + 1, b - a - 1);
    if (label.size() > 7 && label.compare(label.size() - 7, 7, "/shared") == 0) {
      h.shared = true;
      label.resize(label.size() - 7);
    }
    h.gpus = split_indices(label);
    const auto c = line.find('|', b + 1);
    if (!same_kind(c == std::string::npos ? "" : line.substr(c + 1), cdi_kind)) {
      continue;
    }
    h.key = created_key(line.substr(b + 1, c == std::string::npos ? std::string::npos : c - b - 1));
    all.push_back(std::move(h));
  }
  const Holder* me = nullptr;
  for (const auto& h : all) {
    if (h.name == mine) {
      me = &h;
    }
  }
  if (!me) {
    return {};
  }
  for (const auto& other : all) {
    if (other.name == mine || (me->shared && other.shared)) {
      continue;
    }
    const bool first = other.key < me->key || (other.key == me->key && other.name < me->name);
    if (!first) {
      continue;
    }
    for (int g : me->gpus) {
      if (std::find(other.gpus.begin(), other.gpus.end(), g) != other.gpus.end()) {
        return "GPU " + std::to_string(g) + " went to container " + other.name +
               " (another repository's sandbox) at the same moment";
      }
    }
  }
  return {};
}

} // namespace smcp::sandbox
