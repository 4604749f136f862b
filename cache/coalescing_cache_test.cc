#include "cache/coalescing_cache.h"

#include <thread>

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

using namespace std::chrono_literals;
using Cache = CoalescingCache<std::string>;

Cache::Callback ignore() {
  return [](const Cache::Result&) {};
}

class CoalescingCacheTest : public ::testing::Test {
 protected:
  ManualClock clock_;
};

TEST_F(CoalescingCacheTest, MissLeaderThenHitUntilTtl) {
  Cache cache({.capacity = 8192, .shards = 16, .clock = &clock_});
  auto l = cache.lookup("k", nullptr, ignore());
  EXPECT_EQ(l.outcome, Cache::Outcome::kLeader);
  cache.complete("k", std::string("allowed"), 10s);
  l = cache.lookup("k", nullptr, ignore());
  ASSERT_EQ(l.outcome, Cache::Outcome::kHit);
  EXPECT_EQ(*l.value, "allowed");
  clock_.advance(9999ms);
  EXPECT_EQ(cache.lookup("k", nullptr, ignore()).outcome, Cache::Outcome::kHit);
  clock_.advance(1ms);
  EXPECT_EQ(cache.lookup("k", nullptr, ignore()).outcome, Cache::Outcome::kLeader);
  EXPECT_EQ(cache.size(), 0u);
}

TEST_F(CoalescingCacheTest, BusyKeyIsRefreshedBeforeItExpires) {
  Cache cache({.clock = &clock_, .refresh_after = 0.8});
  cache.lookup("k", nullptr, ignore());
  cache.complete("k", std::string("old"), 10s);
  clock_.advance(7999ms);
  EXPECT_EQ(cache.lookup("k", nullptr, ignore()).outcome, Cache::Outcome::kHit);
  clock_.advance(1ms);
  // The first hit past 80% of the TTL gets the value and leads the refresh; others just hit.
  auto l = cache.lookup("k", nullptr, ignore());
  ASSERT_EQ(l.outcome, Cache::Outcome::kHitRefresh);
  EXPECT_EQ(*l.value, "old");
  EXPECT_EQ(cache.lookup("k", nullptr, ignore()).outcome, Cache::Outcome::kHit);
  cache.complete("k", std::string("new"), 10s);
  clock_.advance(5s);  // past the first value's expiry
  l = cache.lookup("k", nullptr, ignore());
  ASSERT_EQ(l.outcome, Cache::Outcome::kHit);
  EXPECT_EQ(*l.value, "new");
  EXPECT_EQ(cache.stats().refreshes, 1u);
}

TEST_F(CoalescingCacheTest, LookupsJoinARefreshThatOutlivesTheEntry) {
  Cache cache({.clock = &clock_, .refresh_after = 0.8});
  cache.lookup("k", nullptr, ignore());
  cache.complete("k", std::string("old"), 10s);
  clock_.advance(9s);
  ASSERT_EQ(cache.lookup("k", nullptr, ignore()).outcome, Cache::Outcome::kHitRefresh);
  clock_.advance(1s);  // expired, the refresh still running
  std::string got;
  EXPECT_EQ(cache.lookup("k", nullptr, [&got](const Cache::Result& r) { got = *r; }).outcome,
            Cache::Outcome::kJoined);
  cache.complete("k", std::string("new"), 10s);
  EXPECT_EQ(got, "new");
}

TEST_F(CoalescingCacheTest, NoRefreshByDefault) {
  Cache cache({.clock = &clock_});
  cache.lookup("k", nullptr, ignore());
  cache.complete("k", std::string("v"), 10s);
  clock_.advance(9999ms);
  EXPECT_EQ(cache.lookup("k", nullptr, ignore()).outcome, Cache::Outcome::kHit);
}

TEST_F(CoalescingCacheTest, TtlIsPerInsert) {
  Cache cache({.clock = &clock_});
  cache.lookup("allowed", nullptr, ignore());
  cache.complete("allowed", std::string("yes"), 10s);
  cache.lookup("denied", nullptr, ignore());
  cache.complete("denied", std::string("no"), 2s);
  clock_.advance(3s);
  EXPECT_EQ(cache.get("allowed"), "yes");
  EXPECT_EQ(cache.get("denied"), std::nullopt);
}

TEST_F(CoalescingCacheTest, JoinersAreCalledBackThroughTheirDispatcher) {
  Cache cache({.clock = &clock_});
  std::vector<std::function<void()>> posted;
  auto post = [&posted](std::function<void()> fn) { posted.push_back(std::move(fn)); };
  std::vector<std::string> seen;
  ASSERT_EQ(cache.lookup("k", post, ignore()).outcome, Cache::Outcome::kLeader);
  auto record = [&seen](const Cache::Result& r) { seen.push_back(r.ok() ? *r : "error"); };
  EXPECT_EQ(cache.lookup("k", post, record).outcome, Cache::Outcome::kJoined);
  EXPECT_EQ(cache.lookup("k", post, record).outcome, Cache::Outcome::kJoined);
  EXPECT_TRUE(posted.empty());
  cache.complete("k", std::string("v"), 1s);
  ASSERT_EQ(posted.size(), 2u);
  EXPECT_TRUE(seen.empty());  // nothing runs on the completing thread
  for (auto& fn : posted) {
    fn();
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"v", "v"}));
  EXPECT_EQ(cache.stats().misses, 1u);
  EXPECT_EQ(cache.stats().coalesced, 2u);
}

TEST_F(CoalescingCacheTest, ErrorsReachWaitersButAreNotCached) {
  Cache cache({.clock = &clock_});
  cache.lookup("k", nullptr, ignore());
  absl::Status got;
  cache.lookup("k", nullptr, [&got](const Cache::Result& r) { got = r.status(); });
  cache.complete("k", absl::UnavailableError("connection refused"), 10s);
  EXPECT_EQ(got, absl::UnavailableError("connection refused"));
  EXPECT_EQ(cache.lookup("k", nullptr, ignore()).outcome, Cache::Outcome::kLeader);
}

TEST_F(CoalescingCacheTest, ZeroTtlNotifiesWithoutCaching) {
  Cache cache({.clock = &clock_});
  cache.lookup("k", nullptr, ignore());
  std::string got;
  cache.lookup("k", nullptr, [&got](const Cache::Result& r) { got = *r; });
  cache.complete("k", std::string("v"), 0s);
  EXPECT_EQ(got, "v");
  EXPECT_EQ(cache.get("k"), std::nullopt);
}

TEST_F(CoalescingCacheTest, LeastRecentlyUsedIsEvicted) {
  Cache cache({.capacity = 2, .shards = 1, .clock = &clock_});
  cache.complete("a", std::string("1"), 1h);
  cache.complete("b", std::string("2"), 1h);
  EXPECT_EQ(cache.get("a"), "1");  // a is now most recent
  cache.complete("c", std::string("3"), 1h);
  EXPECT_EQ(cache.get("b"), std::nullopt);
  EXPECT_EQ(cache.get("a"), "1");
  EXPECT_EQ(cache.get("c"), "3");
  EXPECT_EQ(cache.stats().evictions, 1u);
  cache.complete("c", std::string("4"), 1h);  // overwrite: no eviction
  EXPECT_EQ(cache.get("c"), "4");
  EXPECT_EQ(cache.size(), 2u);
}

TEST_F(CoalescingCacheTest, CapacityIsSplitAcrossShards) {
  Cache cache({.capacity = 64, .shards = 16, .clock = &clock_});
  for (int i = 0; i < 1000; ++i) {
    cache.complete("k" + std::to_string(i), std::string("v"), 1h);
  }
  EXPECT_LE(cache.size(), 64u);
  EXPECT_GE(cache.size(), 16u);
}

TEST_F(CoalescingCacheTest, ConcurrentLookupsElectOneLeaderPerKey) {
  Cache cache({.capacity = 100000, .shards = 16, .clock = &clock_});
  constexpr int kThreads = 8;
  constexpr int kKeys = 2000;
  std::atomic<int> leaders{0}, hits{0}, callbacks{0}, joined{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kKeys; ++i) {
        std::string key = "key" + std::to_string((i + t * 7) % kKeys);
        auto l = cache.lookup(key, nullptr, [&, key](const Cache::Result& r) {
          EXPECT_TRUE(r.ok());
          EXPECT_EQ(*r, "v-" + key);
          callbacks.fetch_add(1);
        });
        switch (l.outcome) {
          case Cache::Outcome::kLeader:
            leaders.fetch_add(1);
            cache.complete(key, "v-" + key, 1h);
            break;
          case Cache::Outcome::kHit:
            EXPECT_EQ(*l.value, "v-" + key);
            hits.fetch_add(1);
            break;
          case Cache::Outcome::kJoined:
            joined.fetch_add(1);
            break;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(leaders.load(), kKeys);
  EXPECT_EQ(hits.load() + joined.load(), (kThreads - 1) * kKeys);
  EXPECT_EQ(callbacks.load(), joined.load());
  auto stats = cache.stats();
  EXPECT_EQ(stats.misses, static_cast<uint64_t>(kKeys));
  EXPECT_EQ(stats.hits, static_cast<uint64_t>(hits.load()));
}

}  // namespace
}  // namespace aaproxy
