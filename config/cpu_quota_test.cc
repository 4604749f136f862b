#include "config/cpu_quota.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

namespace fs = std::filesystem;

class CpuQuotaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
  }
  void write(const std::string& path, const std::string& content) {
    fs::path p = root_ / path.substr(1);
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
  }
  std::string root() const { return root_.string(); }

  fs::path root_;
};

TEST_F(CpuQuotaTest, CgroupV2QuotaRoundedUp) {
  write("/proc/self/cgroup", "0::/kubepods/pod1/c1\n");
  write("/sys/fs/cgroup/kubepods/pod1/c1/cpu.max", "150000 100000\n");
  DefaultWorkers w = defaultWorkerCount(64, root());
  EXPECT_EQ(w.workers, 2);
  EXPECT_EQ(w.source,
            "the cgroup v2 CPU quota of 1.5 CPUs in /sys/fs/cgroup/kubepods/pod1/c1/cpu.max");
}

TEST_F(CpuQuotaTest, CgroupV2TheSmallestAncestorQuotaWins) {
  write("/proc/self/cgroup", "0::/kubepods/pod1/c1\n");
  write("/sys/fs/cgroup/kubepods/pod1/c1/cpu.max", "max 100000\n");
  write("/sys/fs/cgroup/kubepods/pod1/cpu.max", "300000 100000\n");
  write("/sys/fs/cgroup/kubepods/cpu.max", "800000 100000\n");
  EXPECT_EQ(defaultWorkerCount(64, root()).workers, 3);
}

TEST_F(CpuQuotaTest, CgroupV2InsideANamespaceAtTheRoot) {
  write("/proc/self/cgroup", "0::/\n");
  write("/sys/fs/cgroup/cpu.max", "50000 100000\n");  // half a CPU: still one worker
  EXPECT_EQ(defaultWorkerCount(8, root()).workers, 1);
}

TEST_F(CpuQuotaTest, NoQuotaMeansTheCores) {
  write("/proc/self/cgroup", "0::/user.slice\n");
  write("/sys/fs/cgroup/user.slice/cpu.max", "max 100000\n");
  DefaultWorkers w = defaultWorkerCount(6, root());
  EXPECT_EQ(w.workers, 6);
  EXPECT_EQ(w.source, "6 cores, no cgroup CPU quota");
}

TEST_F(CpuQuotaTest, QuotaAboveTheCoresIsCapped) {
  write("/proc/self/cgroup", "0::/big\n");
  write("/sys/fs/cgroup/big/cpu.max", "1600000 100000\n");
  DefaultWorkers w = defaultWorkerCount(4, root());
  EXPECT_EQ(w.workers, 4);
  EXPECT_EQ(w.source,
            "the cgroup v2 CPU quota of 16 CPUs in /sys/fs/cgroup/big/cpu.max, capped at 4 cores");
}

TEST_F(CpuQuotaTest, CgroupV1CfsQuota) {
  write("/proc/self/cgroup", "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n");
  write("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n");
  write("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  DefaultWorkers w = defaultWorkerCount(32, root());
  EXPECT_EQ(w.workers, 3);
  EXPECT_EQ(w.source, "the cgroup v1 CPU quota of 2.5 CPUs in "
                      "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us");
}

TEST_F(CpuQuotaTest, CgroupV1Unlimited) {
  write("/proc/self/cgroup", "4:cpu,cpuacct:/\n");
  write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(defaultWorkerCount(3, root()).workers, 3);
}

TEST_F(CpuQuotaTest, NothingReadableMeansTheCores) {
  DefaultWorkers w = defaultWorkerCount(2, root() + "/missing");
  EXPECT_EQ(w.workers, 2);
  EXPECT_EQ(w.source, "2 cores");
}

TEST_F(CpuQuotaTest, GarbageIsIgnored) {
  write("/proc/self/cgroup", "0::/g\nnot a line\n");
  write("/sys/fs/cgroup/g/cpu.max", "lots 100000\n");
  EXPECT_EQ(defaultWorkerCount(5, root()).workers, 5);
}

}  // namespace
}  // namespace aaproxy
