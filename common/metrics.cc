#include "common/metrics.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace aaproxy {

size_t metricShard() {
  static std::atomic<size_t> next{0};
  thread_local size_t shard = next.fetch_add(1) % kMetricShards;
  return shard;
}

uint64_t Counter::value() const {
  uint64_t total = 0;
  for (const Shard& s : shards_) {
    total += s.value.load(std::memory_order_relaxed);
  }
  return total;
}

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  for (Shard& s : shards_) {
    s.buckets = std::vector<std::atomic<uint64_t>>(bounds_.size() + 1);
  }
}

void Histogram::observe(double value) {
  Shard& s = shards_[metricShard()];
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) {
    ++i;
  }
  s.buckets[i].fetch_add(1, std::memory_order_relaxed);
  s.sum_micros.fetch_add(static_cast<uint64_t>(std::llround(value * 1e6)), std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snap;
  std::vector<uint64_t> counts(bounds_.size() + 1, 0);
  uint64_t sum_micros = 0;
  for (const Shard& s : shards_) {
    for (size_t i = 0; i < counts.size(); ++i) {
      counts[i] += s.buckets[i].load(std::memory_order_relaxed);
    }
    sum_micros += s.sum_micros.load(std::memory_order_relaxed);
  }
  uint64_t running = 0;
  for (uint64_t c : counts) {
    running += c;
    snap.cumulative.push_back(running);
  }
  snap.count = running;
  snap.sum = static_cast<double>(sum_micros) / 1e6;
  return snap;
}

std::vector<double> requestDurationBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60};
}

MetricsRegistry& MetricsRegistry::global() {
  static MetricsRegistry* registry = new MetricsRegistry();
  return *registry;
}

MetricsRegistry::Family& MetricsRegistry::family(const std::string& name, const std::string& help,
                                                 const std::string& type) {
  Family& f = families_[name];
  if (f.type.empty()) {
    f.help = help;
    f.type = type;
  }
  return f;
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                  const std::string& labels) {
  MutexLock lock(&mutex_);
  std::unique_ptr<Counter>& c = family(name, help, "counter").counters[labels];
  if (!c) {
    c = std::make_unique<Counter>();
  }
  return *c;
}

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                      const std::string& labels, const std::vector<double>& bounds) {
  MutexLock lock(&mutex_);
  std::unique_ptr<Histogram>& h = family(name, help, "histogram").histograms[labels];
  if (!h) {
    h = std::make_unique<Histogram>(bounds);
  }
  return *h;
}

void MetricsRegistry::gauge(const std::string& name, const std::string& help,
                            const std::string& labels, std::function<double()> read) {
  MutexLock lock(&mutex_);
  family(name, help, "gauge").gauges[labels] = std::move(read);
}

namespace {

std::string formatValue(double v) {
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  return absl::StrFormat("%.9g", v);
}

std::string braces(const std::string& labels, const std::string& extra = "") {
  std::string inner = labels;
  if (!extra.empty()) {
    inner = inner.empty() ? extra : absl::StrCat(inner, ",", extra);
  }
  return inner.empty() ? "" : absl::StrCat("{", inner, "}");
}

}  // namespace

std::string MetricsRegistry::render() const {
  MutexLock lock(&mutex_);
  std::string out;
  for (const auto& [name, f] : families_) {
    absl::StrAppend(&out, "# HELP ", name, " ", f.help, "\n# TYPE ", name, " ", f.type, "\n");
    for (const auto& [labels, c] : f.counters) {
      absl::StrAppend(&out, name, braces(labels), " ", c->value(), "\n");
    }
    for (const auto& [labels, read] : f.gauges) {
      absl::StrAppend(&out, name, braces(labels), " ", formatValue(read()), "\n");
    }
    for (const auto& [labels, h] : f.histograms) {
      Histogram::Snapshot snap = h->snapshot();
      for (size_t i = 0; i < h->bounds().size(); ++i) {
        absl::StrAppend(&out, name, "_bucket",
                        braces(labels, absl::StrCat("le=\"", formatValue(h->bounds()[i]), "\"")), " ",
                        snap.cumulative[i], "\n");
      }
      absl::StrAppend(&out, name, "_bucket", braces(labels, "le=\"+Inf\""), " ", snap.count, "\n");
      absl::StrAppend(&out, name, "_sum", braces(labels), " ", formatValue(snap.sum), "\n");
      absl::StrAppend(&out, name, "_count", braces(labels), " ", snap.count, "\n");
    }
  }
  return out;
}

std::string escapeLabelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace aaproxy
