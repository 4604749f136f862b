// An asynchronous HTTPS/1.1 client for kube-apiserver that lives on one libevent loop: keep-alive
// connection pool, per-attempt timeout, client-go webhook style retries, bearer token injection,
// and a streaming variant for watches. One instance per loop; instances share a KubeTransport.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "k8s/header_map.h"
#include "kube/kube_transport.h"

struct evdns_base;

namespace aaproxy {

struct ApiResponse {
  int status = 0;
  HeaderMap headers;
  std::string body;
};

// wait.Backoff as k8s.io/apiserver's webhook uses it: `steps` attempts in total; before attempt
// n+1 the client sleeps initial * factor^(n-1) * (1 + U[0,1) * jitter), or the response's
// Retry-After when that is longer.
struct RetryBackoff {
  absl::Duration initial = absl::Milliseconds(500);
  double factor = 1.5;
  double jitter = 0.2;
  int steps = 5;
};

struct ApiServerClientOptions {
  // Per attempt, from the connection request to the complete response (streams: to the headers).
  absl::Duration timeout = absl::Seconds(10);
  RetryBackoff backoff;
  size_t max_idle_connections = 8;
  size_t max_response_bytes = 64 << 20;
};

// A response status after which the request is retried: 429 and every 5xx (client-go's webhook
// retries 500/504/429 and anything with Retry-After; 502/503 from a restarting apiserver are
// worth a retry too), and any response carrying Retry-After.
bool isRetriableStatus(int status, const HeaderMap& headers);

class ApiServerClient {
 public:
  // `callback` gets the final response (any HTTP status: the caller interprets it) or an error:
  // Unavailable for connection/TLS failures after retries, DeadlineExceeded for a timeout,
  // FailedPrecondition for a certificate verification failure (not retried), Cancelled never
  // (the client drops callbacks when it is destroyed).
  using ResponseCallback = std::function<void(absl::StatusOr<ApiResponse>)>;

  struct StreamHandlers {
    // The status line and headers; called once before any data.
    std::function<void(int status, const HeaderMap& headers)> on_headers;
    // Decoded body bytes (chunked framing removed), as they arrive.
    std::function<void(std::string_view data)> on_data;
    // Exactly once, unless cancelled: OK at the end of the body, else the error.
    std::function<void(absl::Status status)> on_end;
  };
  using StreamId = uint64_t;

  struct Stats {
    uint64_t connections_opened = 0;
    uint64_t attempts = 0;  // requests written, retries included
    uint64_t retries = 0;
    size_t idle_connections = 0;
    size_t active_requests = 0;
  };

  ApiServerClient(event_base* base, std::shared_ptr<const KubeTransport> transport,
                  ApiServerClientOptions options = {});
  // Closes every connection; pending callbacks are dropped. Never destroy the client from inside
  // one of its own callbacks.
  ~ApiServerClient();
  ApiServerClient(const ApiServerClient&) = delete;
  ApiServerClient& operator=(const ApiServerClient&) = delete;

  // `path` is relative to the server (the kubeconfig's path prefix is prepended) and includes
  // the query. Headers in `headers` are sent as given; an `Authorization` there replaces the
  // bearer token. The callback runs on this loop.
  void request(std::string method, std::string path, std::string body, HeaderMap headers,
               ResponseCallback callback);

  // A long-lived request (watch). Not retried; the timeout covers only the wait for headers.
  StreamId stream(std::string method, std::string path, HeaderMap headers, StreamHandlers handlers);
  // Stops a stream; its handlers are not called again. Unknown ids are ignored.
  void cancel(StreamId id);

  Stats stats() const;
  event_base* base() const { return base_; }

 private:
  class Connection;
  struct Exchange;
  friend class Connection;

  uint64_t startExchange(std::unique_ptr<Exchange> exchange);
  void startAttempt(Exchange& exchange);
  void releaseConnection(Connection& conn, bool reusable);
  void closeConnection(Connection& conn);
  // Connection -> exchange events.
  void onAttemptFailed(Exchange& exchange, absl::Status error, bool retriable, bool fresh_retry);
  void onResponseHead(Exchange& exchange);
  void onResponseComplete(Exchange& exchange, Connection& conn, bool reusable);
  void onTimeout(Exchange& exchange);
  void scheduleRetry(Exchange& exchange, absl::Duration delay);
  // Completes an exchange: a stream's on_end(status), or the request callback with `response`
  // (when status is OK) or the error.
  void finish(Exchange& exchange, absl::Status status);
  void finishWith(Exchange& exchange, absl::Status status, ApiResponse* response);
  absl::Duration nextBackoff(Exchange& exchange);
  std::string serializeRequest(const Exchange& exchange);
  void scheduleCleanup();

  event_base* const base_;
  const std::shared_ptr<const KubeTransport> transport_;
  const ApiServerClientOptions options_;
  const std::string server_label_;  // "kube-apiserver https://host:port" for messages
  const std::string host_header_;

  evdns_base* dns_ = nullptr;  // created on the first connection to a host name
  absl::BitGen rng_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Exchange>> exchanges_;
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
  std::deque<Connection*> idle_;
  // Objects closed from inside their own callbacks, freed on the next loop turn.
  std::vector<std::unique_ptr<Connection>> graveyard_;
  std::vector<std::unique_ptr<Exchange>> finished_;
  event* cleanup_event_ = nullptr;
  Stats stats_;
};

// Splits a byte stream into '\n'-terminated lines (watch events); keeps the partial tail.
class LineBuffer {
 public:
  template <typename OnLine>
  void append(std::string_view data, OnLine on_line) {
    pending_.append(data.data(), data.size());
    size_t start = 0;
    for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(pending_.data() + start, nl - start);
      if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
      }
      if (!line.empty()) {
        on_line(line);
      }
    }
    pending_.erase(0, start);
  }
  size_t pendingBytes() const { return pending_.size(); }

 private:
  std::string pending_;
};

}  // namespace aaproxy
