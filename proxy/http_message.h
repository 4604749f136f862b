// HTTP/1.x message heads and the pure rules for rewriting them on the way through the proxy.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>
#include <string_view>

#include "k8s/header_map.h"

namespace aaproxy {

struct RequestHead {
  std::string method;
  std::string target;  // the raw request-target, forwarded unchanged
  int http_major = 1;
  int http_minor = 1;
  HeaderMap headers;
  bool keep_alive = true;  // as the client asked (http_should_keep_alive)
  bool upgrade = false;    // Connection: Upgrade with an Upgrade header
  bool chunked = false;
  std::optional<uint64_t> content_length;

  bool hasBody() const { return chunked || (content_length.has_value() && *content_length > 0); }

  // A fresh head that keeps the header vector's and the target's buffers for the next request
  // on a keep-alive connection.
  void reset() {
    HeaderMap kept_headers = std::move(headers);
    std::string kept_target = std::move(target);
    *this = RequestHead();
    kept_headers.clear();
    kept_target.clear();
    headers = std::move(kept_headers);
    target = std::move(kept_target);
  }
};

struct ResponseHead {
  int status = 0;
  std::string reason;
  int http_major = 1;
  int http_minor = 1;
  HeaderMap headers;
  bool keep_alive = true;
  bool chunked = false;
  std::optional<uint64_t> content_length;

  // A fresh head that keeps the header vector's buffer (see RequestHead::reset).
  void reset() {
    HeaderMap kept_headers = std::move(headers);
    *this = ResponseHead();
    kept_headers.clear();
    headers = std::move(kept_headers);
  }
};

// Collects header lines from http_parser's field/value callbacks straight into a HeaderMap,
// appending fragments in place (the map's line slots keep their buffers between messages).
// Lines that arrive after the head, a chunked body's trailers, are dropped: the head has gone
// out by then, and they must not become header lines of the connection's next message.
class HeaderLineCollector {
 public:
  void field(HeaderMap& headers, const char* at, size_t len) {
    if (state_ == State::kTrailers) {
      return;
    }
    if (state_ != State::kField) {
      headers.addLine();
    }
    headers.lastLine().name.append(at, len);
    state_ = State::kField;
  }
  void value(HeaderMap& headers, const char* at, size_t len) {
    if (state_ == State::kTrailers) {
      return;
    }
    if (state_ == State::kNone) {
      headers.addLine();  // http_parser always names a line first; be safe anyway
    }
    headers.lastLine().value.append(at, len);
    state_ = State::kValue;
  }
  void headEnded() { state_ = State::kTrailers; }
  // Before the next message's head.
  void reset() { state_ = State::kNone; }

 private:
  enum class State { kNone, kField, kValue, kTrailers };
  State state_ = State::kNone;
};

// How the proxy frames a response body towards the client.
enum class BodyFraming { kNone, kContentLength, kChunked, kUntilClose };

// The request head sent to the backend: hop-by-hop headers (RFC 9110 §7.6.1 and those named by
// Connection) removed, Upgrade kept for upgrade requests, X-Forwarded-For appended, chunked
// bodies re-chunked, Expect removed (the proxy answers 100-continue itself).
std::string serializeUpstreamRequest(const RequestHead& head, std::string_view client_ip);
// The same into `out` (replacing its content): a connection reuses one buffer for every request.
// `extra_lines` (complete "Name: value\r\n" lines, e.g. the identity) follow the client's.
void serializeUpstreamRequest(const RequestHead& head, std::string_view client_ip,
                              std::string_view extra_lines, std::string& out);

// The response head sent to the client for `upstream` and the framing the proxy will use.
struct DownstreamResponse {
  std::string head;
  BodyFraming framing = BodyFraming::kNone;
  bool close_after = false;
};
DownstreamResponse buildDownstreamResponse(const ResponseHead& upstream, const RequestHead& request,
                                           bool body_allowed, bool client_keep_alive);
// The same into `result` (its head replaced, its buffer reused).
void buildDownstreamResponse(const ResponseHead& upstream, const RequestHead& request,
                             bool body_allowed, bool client_keep_alive,
                             DownstreamResponse& result);

// The header fields of `upstream` for an HTTP/2 response (after ":status"): names lower case,
// hop-by-hop and connection-specific fields (RFC 9113 §8.2.2) and those Connection names left out.
void appendHttp2ResponseFields(const ResponseHead& upstream,
                               std::vector<std::pair<std::string, std::string>>& fields);

// A locally generated response (errors, 401/403): complete head plus body.
std::string serializeLocalResponse(int status, std::string_view content_type, std::string_view body,
                                   const HeaderMap& extra_headers, bool close, int http_minor);

}  // namespace aaproxy
