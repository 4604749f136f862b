// Log-linear latency histogram: see latency_histogram.h for the bucket layout.
#include "bench/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace aaproxy {
namespace {

constexpr uint64_t kLinearLimit = uint64_t{1} << LatencyHistogram::kSubBucketBits;
constexpr uint64_t kHalfSubBuckets = kLinearLimit / 2;

// Group g >= 1 covers [2^(S-1+g), 2^(S+g)) with kHalfSubBuckets buckets of width 2^g.
int groupOf(uint64_t value) {
  const int msb = 63 - std::countl_zero(value);
  return msb - (LatencyHistogram::kSubBucketBits - 1);
}

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(bucketCount(), 0) {}

size_t LatencyHistogram::bucketCount() { return bucketIndex(kMaxValueNs) + 1; }

size_t LatencyHistogram::bucketIndex(uint64_t value) {
  if (value < kLinearLimit) {
    return static_cast<size_t>(value);
  }
  const int group = groupOf(value);
  return static_cast<size_t>(kLinearLimit + (group - 1) * kHalfSubBuckets +
                             ((value >> group) - kHalfSubBuckets));
}

uint64_t LatencyHistogram::bucketLowest(size_t index) {
  if (index < kLinearLimit) {
    return index;
  }
  const uint64_t past_linear = index - kLinearLimit;
  const int group = static_cast<int>(past_linear / kHalfSubBuckets) + 1;
  const uint64_t sub = past_linear % kHalfSubBuckets + kHalfSubBuckets;
  return sub << group;
}

uint64_t LatencyHistogram::bucketWidth(size_t index) {
  if (index < kLinearLimit) {
    return 1;
  }
  const int group = static_cast<int>((index - kLinearLimit) / kHalfSubBuckets) + 1;
  return uint64_t{1} << group;
}

void LatencyHistogram::record(uint64_t value_ns) {
  if (value_ns > kMaxValueNs) {
    value_ns = kMaxValueNs;
    ++clamped_;
  }
  ++counts_[bucketIndex(value_ns)];
  ++count_;
  sum_ += value_ns;
  min_ = std::min(min_, value_ns);
  max_ = std::max(max_, value_ns);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) {
    counts_[i] += other.counts_[i];
  }
  count_ += other.count_;
  clamped_ += other.clamped_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

uint64_t LatencyHistogram::valueAtPercentile(double percentile) const {
  if (count_ == 0) {
    return 0;
  }
  percentile = std::clamp(percentile, 0.0, 100.0);
  uint64_t rank =
      static_cast<uint64_t>(std::ceil(percentile / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const uint64_t mid = bucketLowest(i) + bucketWidth(i) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

}  // namespace aaproxy
