// A libevent loop on its own thread that other threads can post work to.
#pragma once

#include <event2/event.h>

#include <deque>
#include <functional>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "common/mutex.h"
#include "proxy/dispatcher.h"
#include "proxy/libevent_handles.h"

namespace aaproxy {

class EventLoop : public Dispatcher {
 public:
  EventLoop();
  ~EventLoop() override;

  event_base* base() override { return base_.get(); }
  void post(std::function<void()> callback) override;
  bool isCurrentThread() const override;

  // Runs the loop on the calling thread until stop().
  void run();
  // Runs the loop on a new thread.
  void start();
  // Asks the loop to exit; safe from any thread. join() waits for a start()ed thread.
  void stop();
  void join();

 private:
  static void onPosted(evutil_socket_t, short, void* self);
  void drainPosted();

  EventBasePtr base_;
  int wake_fd_ = -1;  // eventfd: post() writes, the loop reads
  EventPtr posted_event_;
  Mutex mutex_;
  std::deque<std::function<void()>> posted_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;
  std::thread::id loop_thread_id_;
};

}  // namespace aaproxy
