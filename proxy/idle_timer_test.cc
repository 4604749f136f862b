// IdleStages on a real event loop: when each stop comes, and what it says.
#include "proxy/idle_timer.h"

#include <event2/event.h>
#include <gtest/gtest.h>

#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proxy/libevent_handles.h"

namespace aaproxy {
namespace {

struct Stop {
  absl::Duration at;  // since arm()
  bool release;
};

// Arms an idle period of `idle_timeout` and runs the loop until the timer stops firing.
struct IdleRun {
  explicit IdleRun(absl::Duration idle_timeout) : idle_timeout(idle_timeout) {
    timer.reset(evtimer_new(base.get(), &IdleRun::onTimer, this));
  }

  std::vector<Stop> run() {
    start = absl::Now();
    stages.arm(timer.get(), idle_timeout);
    event_base_dispatch(base.get());
    return stops;
  }

  static void onTimer(evutil_socket_t, short, void* self) {
    auto* r = static_cast<IdleRun*>(self);
    bool release = r->stages.atReleaseStop(r->timer.get(), r->idle_timeout);
    r->stops.push_back({absl::Now() - r->start, release});
  }

  absl::Duration idle_timeout;
  EventBasePtr base{event_base_new()};
  EventPtr timer;
  IdleStages stages;
  absl::Time start;
  std::vector<Stop> stops;
};

// The loop's timers may fire a little late, never early.
constexpr absl::Duration kSlack = absl::Milliseconds(400);

TEST(IdleStagesTest, ReleasesAfterTheDelayAndClosesAtTheTimeoutCountedFromTheStart) {
  IdleRun r(kIdleReleaseDelay + absl::Milliseconds(300));
  std::vector<Stop> stops = r.run();
  ASSERT_EQ(stops.size(), 2u);
  EXPECT_TRUE(stops[0].release);
  EXPECT_GE(stops[0].at, kIdleReleaseDelay);
  EXPECT_LT(stops[0].at, kIdleReleaseDelay + kSlack);
  EXPECT_FALSE(stops[1].release);
  EXPECT_GE(stops[1].at, r.idle_timeout);
  EXPECT_LT(stops[1].at, r.idle_timeout + kSlack);
}

TEST(IdleStagesTest, ATimeoutNoLongerThanTheDelayHasOnlyTheClosingStop) {
  for (absl::Duration timeout : {absl::Milliseconds(200), kIdleReleaseDelay}) {
    IdleRun r(timeout);
    std::vector<Stop> stops = r.run();
    ASSERT_EQ(stops.size(), 1u) << timeout;
    EXPECT_FALSE(stops[0].release) << timeout;
    EXPECT_GE(stops[0].at, timeout);
    EXPECT_LT(stops[0].at, timeout + kSlack);
  }
}

TEST(IdleStagesTest, CancelledStagesTreatTheNextFiringAsSomethingElse) {
  IdleRun r(absl::Seconds(30));
  r.stages.arm(r.timer.get(), r.idle_timeout);
  r.stages.cancel();
  EXPECT_FALSE(r.stages.atReleaseStop(r.timer.get(), r.idle_timeout));
  evtimer_del(r.timer.get());
  // Armed again, the release stop is back.
  r.stages.arm(r.timer.get(), r.idle_timeout);
  EXPECT_TRUE(r.stages.atReleaseStop(r.timer.get(), r.idle_timeout));
  EXPECT_FALSE(r.stages.atReleaseStop(r.timer.get(), r.idle_timeout));
  evtimer_del(r.timer.get());
}

}  // namespace
}  // namespace aaproxy
