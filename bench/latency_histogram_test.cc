#include "bench/latency_histogram.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

TEST(LatencyHistogramTest, BucketsAreContiguousAndCoverEveryValue) {
  // Each bucket starts where the previous one ended, and bucketIndex() agrees with the bounds.
  uint64_t expected_lowest = 0;
  for (size_t i = 0; i < LatencyHistogram::bucketCount(); ++i) {
    ASSERT_EQ(LatencyHistogram::bucketLowest(i), expected_lowest) << "bucket " << i;
    const uint64_t width = LatencyHistogram::bucketWidth(i);
    ASSERT_EQ(LatencyHistogram::bucketIndex(expected_lowest), i);
    ASSERT_EQ(LatencyHistogram::bucketIndex(expected_lowest + width - 1), i);
    expected_lowest += width;
  }
  EXPECT_GT(expected_lowest, LatencyHistogram::kMaxValueNs);
}

TEST(LatencyHistogramTest, RelativeBucketWidthIsBounded) {
  for (size_t i = 1024; i < LatencyHistogram::bucketCount(); ++i) {
    const double relative = static_cast<double>(LatencyHistogram::bucketWidth(i)) /
                            static_cast<double>(LatencyHistogram::bucketLowest(i));
    ASSERT_LE(relative, 1.0 / 512) << "bucket " << i;
  }
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100; ++v) {
    h.record(v);
  }
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.valueAtPercentile(50), 50u);
  EXPECT_EQ(h.valueAtPercentile(99), 99u);
  EXPECT_EQ(h.valueAtPercentile(100), 100u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(LatencyHistogramTest, LargeValuesWithinPrecision) {
  LatencyHistogram h;
  // 1..10000 microseconds, in nanoseconds.
  for (uint64_t us = 1; us <= 10000; ++us) {
    h.record(us * 1000);
  }
  const struct {
    double percentile;
    double expected_ns;
  } cases[] = {{50, 5'000'000}, {90, 9'000'000}, {99, 9'900'000}, {99.9, 9'990'000}};
  for (const auto& c : cases) {
    const double got = static_cast<double>(h.valueAtPercentile(c.percentile));
    EXPECT_NEAR(got, c.expected_ns, c.expected_ns / 500) << "p" << c.percentile;
  }
  EXPECT_EQ(h.valueAtPercentile(100), 10'000'000u);
  EXPECT_EQ(h.max(), 10'000'000u);
}

TEST(LatencyHistogramTest, SkewedDistributionPercentiles) {
  LatencyHistogram h;
  for (int i = 0; i < 990; ++i) {
    h.record(100'000);  // 100 us
  }
  for (int i = 0; i < 10; ++i) {
    h.record(50'000'000);  // 50 ms
  }
  EXPECT_NEAR(static_cast<double>(h.valueAtPercentile(99)), 100'000, 200);
  EXPECT_NEAR(static_cast<double>(h.valueAtPercentile(99.5)), 50'000'000, 100'000);
}

TEST(LatencyHistogramTest, MergeAddsCounts) {
  LatencyHistogram a;
  LatencyHistogram b;
  a.record(10);
  b.record(1'000'000);
  b.record(2'000'000);
  a.merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.min(), 10u);
  EXPECT_EQ(a.max(), 2'000'000u);
  EXPECT_NEAR(static_cast<double>(a.valueAtPercentile(50)), 1'000'000, 2'000);
}

TEST(LatencyHistogramTest, ClampsHugeValues) {
  LatencyHistogram h;
  h.record(UINT64_MAX);
  EXPECT_EQ(h.clamped(), 1u);
  EXPECT_EQ(h.max(), LatencyHistogram::kMaxValueNs);
  EXPECT_EQ(h.valueAtPercentile(50), LatencyHistogram::kMaxValueNs);
}

TEST(LatencyHistogramTest, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.valueAtPercentile(99), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
}

}  // namespace
}  // namespace aaproxy
