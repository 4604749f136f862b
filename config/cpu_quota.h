// How many workers to run when --workers is not given: the container's CPU quota, not the
// node's core count (a pod limited to 2 CPUs on a 64-core node wants 2 event loops, not 64).
#pragma once

#include <string>

namespace aaproxy {

struct DefaultWorkers {
  int workers = 1;
  std::string source;  // for the start-up log: where the number came from
};

// The CPU quota of this process's cgroup and its ancestors (the smallest), cgroup v2 `cpu.max`
// or v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`, rounded up, at least 1 and at most `cores`;
// `cores` when there is no quota or it cannot be read. `root` prefixes /proc/self/cgroup and
// /sys/fs/cgroup (tests give a fake tree).
DefaultWorkers defaultWorkerCount(unsigned cores, const std::string& root = "");

}  // namespace aaproxy
