// A sharded LRU+TTL cache for authorization decisions and token reviews that also coalesces
// concurrent misses: the first caller of a missing key becomes its leader and does the remote
// call; later callers join and are called back when the leader completes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mutex.h"
#include "cache/clock.h"

namespace aaproxy {

struct CoalescingCacheOptions {
  size_t capacity = 8192;  // total entries across shards (upstream's webhook cache size)
  size_t shards = 16;      // each shard has its own lock; hits on different shards never contend
  const MonotonicClock* clock = nullptr;  // nullptr: SteadyClock
  // After this fraction of an entry's TTL, the first hit also makes its caller the leader of a
  // refresh (kHitRefresh), so that a busy key is renewed before it expires instead of every
  // request waiting for the remote call at expiry. 0 (or >= 1): never.
  double refresh_after = 0;
};

struct CoalescingCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;     // lookups that made the caller a leader
  uint64_t coalesced = 0;  // lookups that joined an in-flight leader
  uint64_t evictions = 0;  // LRU evictions (expired entries are not counted)
  uint64_t refreshes = 0;  // hits that also became the leader of a refresh (kHitRefresh)
};

template <typename V>
class CoalescingCache {
 public:
  using Result = absl::StatusOr<V>;
  // Called once with the leader's result (value or error).
  using Callback = std::function<void(const Result&)>;
  // Runs a closure where the waiter wants its callback to run (typically: post it to the
  // waiter's event loop). Empty: the callback runs inline on the completing thread.
  using Dispatcher = std::function<void(std::function<void()>)>;

  enum class Outcome {
    kHit,     // `value` holds the cached value; the callback is dropped
    kLeader,  // the caller must call complete(key, ...) exactly once, success or failure
    kJoined,  // the callback will run (via the dispatcher) when the leader completes
    // A hit (`value` holds it, the callback is dropped) whose caller must also refresh the
    // entry: call complete(key, ...) exactly once. Until then other hits are plain, and once
    // the entry expires lookups join the refresh.
    kHitRefresh,
  };
  struct Lookup {
    Outcome outcome;
    std::optional<V> value;
  };

  explicit CoalescingCache(CoalescingCacheOptions options = {})
      : clock_(options.clock != nullptr ? options.clock : &SteadyClock::instance()),
        refresh_after_(options.refresh_after > 0 && options.refresh_after < 1
                           ? options.refresh_after
                           : 0) {
    size_t shards = std::max<size_t>(1, std::min(options.shards, std::max<size_t>(1, options.capacity)));
    size_t perShard = std::max<size_t>(1, (options.capacity + shards - 1) / shards);
    shards_.reserve(shards);
    for (size_t i = 0; i < shards; ++i) {
      shards_.push_back(std::make_unique<Shard>(perShard));
    }
  }

  CoalescingCache(const CoalescingCache&) = delete;
  CoalescingCache& operator=(const CoalescingCache&) = delete;

  // `dispatch` and `onComplete` are anything a Dispatcher / Callback can be made of; they are
  // only turned into std::functions (and so copied) when the caller joins, so a hit costs no
  // allocation.
  template <typename D, typename C>
  Lookup lookup(std::string_view key, D&& dispatch, C&& onComplete) {
    Shard& shard = shardFor(key);
    MutexLock lock(&shard.mu);
    bool refresh = false;
    if (auto value = shard.findLocked(key, clock_->now(), &refresh)) {
      hits_.fetch_add(1, std::memory_order_relaxed);
      if (refresh && shard.inflight.emplace(std::string(key), std::vector<Waiter>{}).second) {
        refreshes_.fetch_add(1, std::memory_order_relaxed);
        return {Outcome::kHitRefresh, std::move(value)};
      }
      return {Outcome::kHit, std::move(value)};
    }
    auto it = shard.inflight.find(toAbsl(key));
    if (it != shard.inflight.end()) {
      it->second.push_back(
          Waiter{Dispatcher(std::forward<D>(dispatch)), Callback(std::forward<C>(onComplete))});
      coalesced_.fetch_add(1, std::memory_order_relaxed);
      return {Outcome::kJoined, std::nullopt};
    }
    shard.inflight.emplace(std::string(key), std::vector<Waiter>{});
    misses_.fetch_add(1, std::memory_order_relaxed);
    return {Outcome::kLeader, std::nullopt};
  }

  // Finishes the leader's lookup. A value is cached for `ttl` (nothing is cached when
  // ttl <= 0, e.g. upstream's "too large to cache" case); an error is never cached. Every
  // joined waiter gets the result. Completing a key nobody leads only caches the value.
  void complete(std::string_view key, Result result, std::chrono::nanoseconds ttl) {
    std::vector<Waiter> waiters;
    Shard& shard = shardFor(key);
    {
      MutexLock lock(&shard.mu);
      if (result.ok() && ttl > std::chrono::nanoseconds::zero()) {
        auto now = clock_->now();
        auto refresh_at =
            refresh_after_ > 0
                ? now + std::chrono::duration_cast<std::chrono::nanoseconds>(ttl * refresh_after_)
                : MonotonicClock::TimePoint::max();
        evictions_.fetch_add(shard.insertLocked(key, *result, now + ttl, refresh_at),
                             std::memory_order_relaxed);
      }
      auto it = shard.inflight.find(toAbsl(key));
      if (it != shard.inflight.end()) {
        waiters = std::move(it->second);
        shard.inflight.erase(it);
      }
    }
    if (waiters.empty()) {
      return;
    }
    auto shared = std::make_shared<const Result>(std::move(result));
    for (Waiter& w : waiters) {
      if (w.dispatch) {
        w.dispatch([cb = std::move(w.callback), shared]() { cb(*shared); });
      } else {
        w.callback(*shared);
      }
    }
  }

  // A plain read: no coalescing, no leader election.
  std::optional<V> get(std::string_view key) {
    Shard& shard = shardFor(key);
    MutexLock lock(&shard.mu);
    bool refresh = false;
    return shard.findLocked(key, clock_->now(), &refresh);
  }

  size_t size() const {
    size_t n = 0;
    for (const auto& s : shards_) {
      MutexLock lock(&s->mu);
      n += s->lru.size();
    }
    return n;
  }

  CoalescingCacheStats stats() const {
    return {hits_.load(), misses_.load(), coalesced_.load(), evictions_.load(), refreshes_.load()};
  }

 private:
  struct Waiter {
    Dispatcher dispatch;
    Callback callback;
  };
  struct Entry {
    std::string key;
    V value;
    MonotonicClock::TimePoint expires;
    MonotonicClock::TimePoint refresh_at;  // from here on a hit is also due to refresh
  };
  struct Shard {
    explicit Shard(size_t cap) : capacity(cap) {}

    std::optional<V> findLocked(std::string_view key, MonotonicClock::TimePoint now,
                                bool* refresh) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      auto it = index.find(toAbsl(key));
      if (it == index.end()) {
        return std::nullopt;
      }
      if (it->second->expires <= now) {
        lru.erase(it->second);
        index.erase(it);
        return std::nullopt;
      }
      lru.splice(lru.begin(), lru, it->second);
      *refresh = it->second->refresh_at <= now;
      return it->second->value;
    }

    // Returns how many entries were evicted to make room.
    uint64_t insertLocked(std::string_view key, const V& value, MonotonicClock::TimePoint expires,
                          MonotonicClock::TimePoint refresh_at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      auto it = index.find(toAbsl(key));
      if (it != index.end()) {
        it->second->value = value;
        it->second->expires = expires;
        it->second->refresh_at = refresh_at;
        lru.splice(lru.begin(), lru, it->second);
        return 0;
      }
      uint64_t evicted = 0;
      while (lru.size() >= capacity) {
        index.erase(lru.back().key);
        lru.pop_back();
        ++evicted;
      }
      lru.push_front(Entry{std::string(key), value, expires, refresh_at});
      index.emplace(lru.front().key, lru.begin());
      return evicted;
    }

    const size_t capacity;
    mutable Mutex mu;
    std::list<Entry> lru ABSL_GUARDED_BY(mu);  // front: most recently used
    // Both maps find by std::string_view (absl's heterogeneous lookup): no key copy per lookup.
    absl::flat_hash_map<std::string, typename std::list<Entry>::iterator> index ABSL_GUARDED_BY(mu);
    absl::flat_hash_map<std::string, std::vector<Waiter>> inflight ABSL_GUARDED_BY(mu);
  };

  // The maps' transparent hash takes absl::string_view, a type of its own in this abseil build.
  static absl::string_view toAbsl(std::string_view s) {
    return absl::string_view(s.data(), s.size());
  }

  Shard& shardFor(std::string_view key) const {
    return *shards_[absl::Hash<std::string_view>{}(key) % shards_.size()];
  }

  const MonotonicClock* clock_;
  const double refresh_after_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<uint64_t> hits_{0}, misses_{0}, coalesced_{0}, evictions_{0}, refreshes_{0};
};

}  // namespace aaproxy
