// RAII owners for libevent handles (and, via common/, OpenSSL ones), so no error path leaks one.
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>

#include "common/openssl_handles.h"

namespace aaproxy {

template <auto Free>
struct FreeWith {
  template <typename T>
  void operator()(T* p) const {
    if (p != nullptr) {
      Free(p);
    }
  }
};

using EventBasePtr = std::unique_ptr<event_base, FreeWith<event_base_free>>;
using EventPtr = std::unique_ptr<event, FreeWith<event_free>>;
using BufferEventPtr = std::unique_ptr<bufferevent, FreeWith<bufferevent_free>>;
using ListenerPtr = std::unique_ptr<evconnlistener, FreeWith<evconnlistener_free>>;
using EvBufferPtr = std::unique_ptr<evbuffer, FreeWith<evbuffer_free>>;

}  // namespace aaproxy
