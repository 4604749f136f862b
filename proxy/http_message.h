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
  // The trailer section (a chunked body's, or HTTP/2 HEADERS after DATA): apart from the head,
  // which has gone out before they arrive.
  HeaderMap trailers;

  bool hasBody() const { return chunked || (content_length.has_value() && *content_length > 0); }

  // A fresh head that keeps the header vectors' and the target's buffers for the next request
  // on a keep-alive connection.
  void reset() {
    HeaderMap kept_headers = std::move(headers);
    HeaderMap kept_trailers = std::move(trailers);
    std::string kept_target = std::move(target);
    *this = RequestHead();
    kept_headers.clear();
    kept_trailers.clear();
    kept_target.clear();
    headers = std::move(kept_headers);
    trailers = std::move(kept_trailers);
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
  HeaderMap trailers;  // a chunked body's trailer section

  // A fresh head that keeps the header vectors' buffers (see RequestHead::reset).
  void reset() {
    HeaderMap kept_headers = std::move(headers);
    HeaderMap kept_trailers = std::move(trailers);
    *this = ResponseHead();
    kept_headers.clear();
    kept_trailers.clear();
    headers = std::move(kept_headers);
    trailers = std::move(kept_trailers);
  }
};

// RFC 9110 tchar: the bytes of a field name.
inline bool isHttpTokenChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z')) {
    return true;
  }
  switch (u) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

// Collects header lines from http_parser's field/value callbacks straight into a HeaderMap,
// appending fragments in place (the map's line slots keep their buffers between messages).
// Lines that arrive after the head, a chunked body's trailers, never go into the head's map: the
// head has gone out by then, and they must not become header lines of the connection's next
// message. They go into `trailers` when the caller passes one, and are dropped otherwise.
class HeaderLineCollector {
 public:
  // False when the fragment holds a byte that is not a token character. Debian's http-parser
  // (not built strict) lets spaces into field names: "X-Remote-User : x" would arrive named
  // "X-Remote-User ", pass the identity-header filters and reach a backend that may trim it.
  // RFC 9112 section 5.1: a server must answer 400 to whitespace before the colon.
  bool field(HeaderMap& headers, const char* at, size_t len) {
    return field(headers, nullptr, at, len);
  }
  bool field(HeaderMap& headers, HeaderMap& trailers, const char* at, size_t len) {
    return field(headers, &trailers, at, len);
  }
  // False when the fragment holds a control byte other than tab: http-parser does not check
  // the first byte of a value, so "Name: \0x" would otherwise be forwarded with its NUL
  // (RFC 9110 section 5.5: reject, or replace with SP, before forwarding; Go answers 400).
  bool value(HeaderMap& headers, const char* at, size_t len) {
    return value(headers, nullptr, at, len);
  }
  bool value(HeaderMap& headers, HeaderMap& trailers, const char* at, size_t len) {
    return value(headers, &trailers, at, len);
  }
  void headEnded() {
    in_trailers_ = true;
    state_ = State::kNone;
  }
  // Before the next message's head.
  void reset() {
    in_trailers_ = false;
    state_ = State::kNone;
  }

 private:
  enum class State { kNone, kField, kValue };

  bool field(HeaderMap& headers, HeaderMap* trailers, const char* at, size_t len) {
    if (in_trailers_ && trailers == nullptr) {
      return true;
    }
    for (size_t i = 0; i < len; ++i) {
      if (!isHttpTokenChar(at[i])) {
        return false;
      }
    }
    HeaderMap& lines = in_trailers_ ? *trailers : headers;
    if (state_ != State::kField) {
      lines.addLine();
    }
    lines.lastLine().name.append(at, len);
    state_ = State::kField;
    return true;
  }
  bool value(HeaderMap& headers, HeaderMap* trailers, const char* at, size_t len) {
    if (in_trailers_ && trailers == nullptr) {
      return true;
    }
    for (size_t i = 0; i < len; ++i) {
      const auto c = static_cast<unsigned char>(at[i]);
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        return false;
      }
    }
    HeaderMap& lines = in_trailers_ ? *trailers : headers;
    if (state_ == State::kNone) {
      lines.addLine();  // http_parser always names a line first; be safe anyway
    }
    lines.lastLine().value.append(at, len);
    state_ = State::kValue;
    return true;
  }

  State state_ = State::kNone;
  bool in_trailers_ = false;
};

// How the proxy frames a response body towards the client.
enum class BodyFraming { kNone, kContentLength, kChunked, kUntilClose };

// The request head sent to the backend: hop-by-hop headers (RFC 9110 §7.6.1 and those named by
// Connection) removed, Upgrade kept for upgrade requests, X-Forwarded-For appended, chunked
// bodies re-chunked, Expect removed (the proxy answers 100-continue itself), "Te: trailers"
// when the client's TE has "trailers" (Go's ReverseProxy, golang/go#21096). The client's
// Trailer field is not copied: the caller announces what it will forward (extra_lines).
std::string serializeUpstreamRequest(const RequestHead& head, std::string_view client_ip);
// The same into `out` (replacing its content): a connection reuses one buffer for every request.
// `extra_lines` (complete "Name: value\r\n" lines, e.g. the identity) follow the client's.
void serializeUpstreamRequest(const RequestHead& head, std::string_view client_ip,
                              std::string_view extra_lines, std::string& out);

// The response head sent to the client for `upstream` and the framing the proxy will use. A
// chunked response re-chunked to the client keeps its Trailer field, naming only the trailers
// that will be forwarded (forwardableTrailerNames).
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
// hop-by-hop and connection-specific fields (RFC 9113 §8.2.2) and those Connection names left out;
// for a chunked response, "trailer" naming the trailers that will be forwarded.
void appendHttp2ResponseFields(const ResponseHead& upstream,
                               std::vector<std::pair<std::string, std::string>>& fields);

// Trailers, forwarded as Go's ReverseProxy forwards them (request and response, announced or
// not), minus what may not travel in a trailer section: the fields Go's
// httpguts.ValidTrailerHeader refuses (framing, routing, authentication, request modifiers:
// Authorization, Content-Length, Content-Type, Host, If-*, TE, Trailer, Transfer-Encoding, ...),
// hop-by-hop and connection-specific fields, pseudo-header fields, and names that are not tokens.
// A request's trailers must also lose what admission strips from heads (identity, impersonation:
// RequestAdmission::stripTrailers) before they are written.
bool isForwardableTrailer(std::string_view name);

// The names `headers`' Trailer lines announce that may be forwarded (isForwardableTrailer, not
// named by Connection), one line each with an empty value.
HeaderMap forwardableTrailerNames(const HeaderMap& headers);
// "Trailer: A, B\r\n" naming the lines of `names`; nothing when it is empty.
void appendTrailerAnnouncement(const HeaderMap& names, std::string& out);

// The end of a body re-chunked towards its next hop: "0\r\n", the lines of `trailers` that may be
// forwarded (isForwardableTrailer, not named by `head`'s Connection), then "\r\n".
void appendLastChunk(const HeaderMap& trailers, const HeaderMap& head, std::string& out);

// The same trailers as HTTP/2 fields (names lower case), for a trailing HEADERS frame.
void appendHttp2TrailerFields(const HeaderMap& trailers, const HeaderMap& head,
                              std::vector<std::pair<std::string, std::string>>& fields);

// A locally generated response (errors, 401/403): complete head plus body.
std::string serializeLocalResponse(int status, std::string_view content_type, std::string_view body,
                                   const HeaderMap& extra_headers, bool close, int http_minor);

}  // namespace aaproxy
