// What the sample backend answers for a request target: the sample API of
// docs/kubernetes-semantics.md §6 plus debug endpoints, decided without any socket.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aaproxy::sample {

// A request target split into its path and its raw (not percent-decoded) query pairs.
struct RequestTarget {
  std::string path;
  std::vector<std::pair<std::string, std::string>> query;

  // The value of the first `key` query parameter; nullopt when absent.
  std::optional<std::string_view> queryValue(std::string_view key) const;
};

RequestTarget parseRequestTarget(std::string_view target);

// What kind of response a route produces; everything but kFixed is streamed or deferred
// by the server.
enum class RouteKind {
  kFixed,          // status + content type + body, answered at once
  kWatch,          // chunked watch event stream for `ns`
  kDebugHeaders,   // JSON of the request line and header lines
  kDebugBody,      // size, SHA-256 and Transfer-Encoding of the request body
  kDebugBytes,     // `bytes` bytes of bytePatternAt()
  kDebugEcho,      // 101 then raw echo (only with an Upgrade request)
  kDebugSlow,      // fixed body after `delayMs`
  kDebugTrailers,  // chunked `body` with `trailers` after the last chunk, announced in Trailer
};

struct Route {
  RouteKind kind = RouteKind::kFixed;
  int status = 200;
  std::string contentType = "application/json";
  std::string body;
  std::string ns;              // kWatch
  uint64_t bytes = 0;          // kDebugBytes
  int64_t delayMs = 0;         // kDebugSlow
  int64_t timeoutSeconds = 0;  // kWatch: end the stream after this long; 0 = never
  std::vector<std::pair<std::string, std::string>> trailers;  // kDebugTrailers, in query order
};

// The body of /debug/trailers, before its trailers.
inline constexpr std::string_view kTrailersBody = "trailers follow\n";

// Routes a request. Method checks: the sample API answers GET and HEAD only (405 otherwise);
// debug endpoints accept any method.
Route routeRequest(std::string_view method, std::string_view target);

// Bodies, exact bytes (Go's json.Encoder adds the trailing newline, so they end with "\n").
std::string apiGroupListJson();
std::string apiGroupJson();
std::string apiResourceListJson();
std::string sampleListJson(std::string_view ns);
std::string sampleJson(std::string_view ns, std::string_view name);
std::string notFoundStatusJson();

// One watch event line: {"type":<type>,"object":<Sample sample1 in ns, resourceVersion rv>}\n
std::string watchEventJson(std::string_view type, std::string_view ns, uint64_t resourceVersion);

// The deterministic /debug/bytes pattern: byte at offset i is i mod 256.
inline unsigned char bytePatternAt(uint64_t offset) { return static_cast<unsigned char>(offset); }

}  // namespace aaproxy::sample
