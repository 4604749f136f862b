// Log-linear latency histogram for the load generator (HdrHistogram-like, fixed precision).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace aaproxy {

// Records non-negative durations in nanoseconds. Values below 2^kSubBucketBits land in exact
// buckets; above that each power-of-two range is split into 2^(kSubBucketBits-1) equal buckets,
// so every recorded value is known to within 1/512 of itself (about 0.2%). Values beyond
// kMaxValueNs are clamped (and counted in clamped()).
class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 10;
  static constexpr uint64_t kMaxValueNs = uint64_t{1} << 40;  // about 18 minutes

  LatencyHistogram();

  void record(uint64_t value_ns);
  // Adds every count of `other` (histograms of several threads become one).
  void merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  uint64_t clamped() const { return clamped_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const {
    return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
  }

  // The value at `percentile` (0..100]: the smallest recorded value v such that at least
  // percentile% of the records are <= v, reported as the midpoint of v's bucket (clamped to the
  // observed min/max so that p100 is the exact maximum). 0 when empty.
  uint64_t valueAtPercentile(double percentile) const;

  // Bucket arithmetic, exposed for tests.
  static size_t bucketIndex(uint64_t value_ns);
  static uint64_t bucketLowest(size_t index);
  static uint64_t bucketWidth(size_t index);
  static size_t bucketCount();

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t clamped_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  // Sum in nanoseconds; 2^64 ns is 584 years of accumulated latency, enough for any run.
  uint64_t sum_ = 0;
};

}  // namespace aaproxy
