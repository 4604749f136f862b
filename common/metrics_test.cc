#include "common/metrics.h"

#include <thread>

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

TEST(Metrics, CountersSumAcrossThreads) {
  MetricsRegistry registry;
  Counter& c = registry.counter("test_total", "A test counter.", "code=\"200\"");
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c] {
      for (int i = 0; i < 1000; ++i) {
        c.inc();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(c.value(), 4000u);
  EXPECT_EQ(&registry.counter("test_total", "", "code=\"200\""), &c);
}

TEST(Metrics, RendersPrometheusTextFormat) {
  MetricsRegistry registry;
  registry.counter("b_total", "Bees.", "kind=\"x\"").inc(3);
  registry.gauge("a_open", "Open things.", "", [] { return 2.5; });
  Histogram& h = registry.histogram("c_seconds", "Durations.", "verb=\"GET\"", {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  EXPECT_EQ(registry.render(),
            "# HELP a_open Open things.\n# TYPE a_open gauge\na_open 2.5\n"
            "# HELP b_total Bees.\n# TYPE b_total counter\nb_total{kind=\"x\"} 3\n"
            "# HELP c_seconds Durations.\n# TYPE c_seconds histogram\n"
            "c_seconds_bucket{verb=\"GET\",le=\"0.1\"} 1\n"
            "c_seconds_bucket{verb=\"GET\",le=\"1\"} 2\n"
            "c_seconds_bucket{verb=\"GET\",le=\"+Inf\"} 3\n"
            "c_seconds_sum{verb=\"GET\"} 5.55\n"
            "c_seconds_count{verb=\"GET\"} 3\n");
}

TEST(Metrics, EscapesLabelValues) {
  EXPECT_EQ(escapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

}  // namespace
}  // namespace aaproxy
