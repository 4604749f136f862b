// Time sources for caches: the real monotonic clock, and a manual one for deterministic tests.
#pragma once

#include <atomic>
#include <chrono>

namespace aaproxy {

class MonotonicClock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~MonotonicClock() = default;
  virtual TimePoint now() const = 0;
};

class SteadyClock final : public MonotonicClock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  static const SteadyClock& instance() {
    static const SteadyClock clock;
    return clock;
  }
};

// Starts at an arbitrary fixed point; only advance() moves it. Thread-safe.
class ManualClock final : public MonotonicClock {
 public:
  TimePoint now() const override { return TimePoint(std::chrono::nanoseconds(nanos_.load())); }
  void advance(std::chrono::nanoseconds d) { nanos_.fetch_add(d.count()); }

 private:
  std::atomic<int64_t> nanos_{int64_t{1'000'000'000'000}};
};

}  // namespace aaproxy
