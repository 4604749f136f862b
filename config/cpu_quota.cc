#include "config/cpu_quota.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace aaproxy {
namespace {

std::optional<std::string> readFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(ss.str()));
}

struct Quota {
  double cpus;
  std::string file;
};

// The cgroup directory and its ancestors below `mount`, innermost first.
std::vector<std::string> cgroupDirs(const std::string& mount, std::string path) {
  std::vector<std::string> dirs;
  while (true) {
    dirs.push_back(mount + (path == "/" ? "" : path));
    if (path.empty() || path == "/") {
      break;
    }
    size_t slash = path.rfind('/');
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
  return dirs;
}

void keepSmaller(std::optional<Quota>& best, double cpus, const std::string& file) {
  if (!best || cpus < best->cpus) {
    best = Quota{cpus, file};
  }
}

// cgroup v2: "max 100000" (no limit) or "<quota> <period>".
void readV2(const std::string& dir, std::optional<Quota>& best) {
  std::string file = dir + "/cpu.max";
  std::optional<std::string> content = readFile(file);
  if (!content) {
    return;
  }
  std::vector<std::string> parts = absl::StrSplit(*content, ' ', absl::SkipEmpty());
  double quota = 0;
  double period = 0;
  if (parts.size() == 2 && parts[0] != "max" && absl::SimpleAtod(parts[0], &quota) &&
      absl::SimpleAtod(parts[1], &period) && quota > 0 && period > 0) {
    keepSmaller(best, quota / period, file);
  }
}

// cgroup v1: cpu.cfs_quota_us (-1: no limit) and cpu.cfs_period_us.
void readV1(const std::string& dir, std::optional<Quota>& best) {
  std::optional<std::string> quota_text = readFile(dir + "/cpu.cfs_quota_us");
  std::optional<std::string> period_text = readFile(dir + "/cpu.cfs_period_us");
  double quota = 0;
  double period = 0;
  if (quota_text && period_text && absl::SimpleAtod(*quota_text, &quota) &&
      absl::SimpleAtod(*period_text, &period) && quota > 0 && period > 0) {
    keepSmaller(best, quota / period, dir + "/cpu.cfs_quota_us");
  }
}

}  // namespace

DefaultWorkers defaultWorkerCount(unsigned cores, const std::string& root) {
  cores = std::max(1u, cores);
  std::optional<Quota> best;
  std::string version;
  const std::string mount = root + "/sys/fs/cgroup";
  if (std::optional<std::string> cgroups = readFile(root + "/proc/self/cgroup")) {
    for (absl::string_view line : absl::StrSplit(*cgroups, '\n')) {
      // "0::/path" (v2), "4:cpu,cpuacct:/path" (v1).
      std::vector<std::string> fields = absl::StrSplit(line, absl::MaxSplits(':', 2));
      if (fields.size() != 3) {
        continue;
      }
      if (fields[0] == "0" && fields[1].empty()) {
        for (const std::string& dir : cgroupDirs(mount, fields[2])) {
          readV2(dir, best);
        }
        version = "v2";
      }
      std::vector<std::string> controllers = absl::StrSplit(fields[1], ',');
      if (std::find(controllers.begin(), controllers.end(), "cpu") != controllers.end()) {
        for (const std::string& hierarchy : {fields[1], std::string("cpu")}) {
          for (const std::string& dir :
               cgroupDirs(absl::StrCat(mount, "/", hierarchy), fields[2])) {
            readV1(dir, best);
          }
        }
        version = "v1";
      }
    }
  }
  if (!best) {
    return {static_cast<int>(cores),
            absl::StrCat(cores, " cores", version.empty() ? "" : ", no cgroup CPU quota")};
  }
  int workers = std::clamp(static_cast<int>(std::ceil(best->cpus - 1e-9)), 1,
                           static_cast<int>(cores));
  return {workers, absl::StrCat("the cgroup ", version, " CPU quota of ", best->cpus, " CPUs in ",
                                best->file.substr(root.size()),
                                workers == static_cast<int>(cores) && best->cpus > cores
                                    ? absl::StrCat(", capped at ", cores, " cores")
                                    : "")};
}

}  // namespace aaproxy
