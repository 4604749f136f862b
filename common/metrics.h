// Prometheus metrics with no hot-path contention: every counter and histogram is sharded by
// thread, so a worker's increment touches only its own cache line; a scrape sums the shards.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/mutex.h"

namespace aaproxy {

inline constexpr size_t kMetricShards = 16;

// The shard of the calling thread (threads are numbered as they first record a metric).
size_t metricShard();

class Counter {
 public:
  void inc(uint64_t n = 1) { shards_[metricShard()].value.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const;

 private:
  struct alignas(64) Shard {
    std::atomic<uint64_t> value{0};
  };
  std::array<Shard, kMetricShards> shards_;
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  struct Snapshot {
    std::vector<uint64_t> cumulative;  // per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  struct alignas(64) Shard {
    std::vector<std::atomic<uint64_t>> buckets;  // bounds + 1
    std::atomic<uint64_t> sum_micros{0};
  };
  std::vector<double> bounds_;
  std::array<Shard, kMetricShards> shards_;
};

// Latency buckets as Kubernetes components use for request durations (seconds).
std::vector<double> requestDurationBuckets();

class MetricsRegistry {
 public:
  static MetricsRegistry& global();

  // Stable references: look them up once and keep them. `labels` is the rendered label set
  // without braces (`code="200",verb="GET"`), empty for none.
  Counter& counter(const std::string& name, const std::string& help, const std::string& labels = "");
  Histogram& histogram(const std::string& name, const std::string& help, const std::string& labels,
                       const std::vector<double>& bounds);
  // A value computed at scrape time (open connections, certificate expiry).
  void gauge(const std::string& name, const std::string& help, const std::string& labels,
             std::function<double()> read);

  // Prometheus text exposition format 0.0.4.
  std::string render() const;

 private:
  struct Family {
    std::string help;
    std::string type;
    std::map<std::string, std::unique_ptr<Counter>> counters;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
    std::map<std::string, std::function<double()>> gauges;
  };
  Family& family(const std::string& name, const std::string& help, const std::string& type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  mutable Mutex mutex_;
  std::map<std::string, Family> families_ ABSL_GUARDED_BY(mutex_);
};

// Escapes a label value for the text format (backslash, double quote, newline).
std::string escapeLabelValue(const std::string& value);

}  // namespace aaproxy
