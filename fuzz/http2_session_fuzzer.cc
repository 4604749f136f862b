// HTTP/2 as the proxy serves it: a server-side nghttp2 session set up as
// Http2Connection::start() (proxy/http2_connection.cc) sets it up (the same callbacks, no
// automatic WINDOW_UPDATE, the same SETTINGS and connection window), fed the client's bytes
// from memory: no sockets, no event loop. Each request's fields become a RequestHead the way
// Http2Connection's streams build it, and the HTTP/1.1 request for the backend is written.
// Each request is answered at once with a small body, and its DATA is consumed.
//
// Input: byte 0 holds options (bit 0: prepend the client preface; bit 1: GOAWAY after the
// first request; bits 2-7: the size of each read); the rest is what the client sent.
//
// Invariants:
//  - no crash, no leak; nghttp2 either consumes all it is given or reports an error;
//  - never more open streams than SETTINGS_MAX_CONCURRENT_STREAMS (250);
//  - fields nghttp2 delivers are valid HTTP/2 fields (lower-case token names, values without
//    CR, LF or NUL), so the HTTP/1.1 request built from them has no line break inside a line and
//    re-parses with http-parser to the same method and target when the target is a valid
//    origin-form request URI (admission answers 400 to invalid ones).
#include <http_parser.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "authz/go_text.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/fuzz_input.h"
#include "proxy/http2_session.h"
#include "proxy/http_message.h"

namespace aaproxy::fuzz {
namespace {

// ProxyOptions' defaults and Http2Connection's constants.
constexpr uint32_t kMaxStreams = kHttp2DefaultMaxStreams;  // --http2-max-streams... = 0
constexpr size_t kMaxHeaderBytes = 1 << 20;   // --max-header-bytes
constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// As http2_connection.cc's canonicalHeaderName (Go's CanonicalHeaderKey).
std::string canonicalHeaderName(std::string_view name) {
  std::string out(name);
  for (char c : out) {
    bool token = absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                 std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
    if (!token || c == '\0') {
      return out;
    }
  }
  bool upper = true;
  for (char& c : out) {
    c = upper ? absl::ascii_toupper(static_cast<unsigned char>(c))
              : absl::ascii_tolower(static_cast<unsigned char>(c));
    upper = c == '-';
  }
  return out;
}

// What Http2Connection::Stream keeps of a request.
struct Stream {
  RequestHead head;
  std::string authority;
  std::string host;
  std::string cookie;
  size_t header_bytes = 0;
  bool header_overflow = false;
  std::string response_body = "{\"kind\":\"Status\"}";
  size_t response_sent = 0;

  Stream() {
    head.http_major = 2;
    head.http_minor = 0;
  }

  void addHeader(std::string_view name, std::string_view value) {
    header_bytes += name.size() + value.size() + 32;
    if (header_bytes > kMaxHeaderBytes) {
      header_overflow = true;
      return;
    }
    if (!name.empty() && name[0] == ':') {
      if (name == ":method") {
        head.method = std::string(value);
      } else if (name == ":path") {
        head.target = std::string(value);
      } else if (name == ":authority") {
        authority = std::string(value);
      }
      return;
    }
    if (name == "cookie") {
      cookie += cookie.empty() ? "" : "; ";
      cookie.append(value);
      return;
    }
    if (name == "host") {
      host = std::string(value);
      return;
    }
    head.headers.add(canonicalHeaderName(name), std::string(value));
  }

  void onHeadersComplete(bool end_stream) {
    std::string h = !authority.empty() ? authority : host;
    if (!h.empty()) {
      head.headers.add("Host", std::move(h));
    }
    if (!cookie.empty()) {
      head.headers.add("Cookie", std::move(cookie));
    }
    if (std::optional<std::string_view> length = head.headers.get("Content-Length")) {
      uint64_t n = 0;
      if (absl::SimpleAtoi(absl::string_view(length->data(), length->size()), &n)) {
        head.content_length = n;
      }
    }
    head.chunked = !end_stream && (!head.content_length.has_value() || head.headers.has("Trailer"));
  }
};

void checkUpstreamRequest(const RequestHead& head) {
  std::string out;
  serializeUpstreamRequest(head, "10.0.0.1", "X-Remote-User: fuzz\r\n", out);
  std::string_view rest = out;
  while (!rest.empty()) {
    size_t crlf = rest.find("\r\n");
    FUZZ_CHECK(crlf != std::string_view::npos, out);
    FUZZ_CHECK(rest.substr(0, crlf).find_first_of("\r\n") == std::string_view::npos, out);
    rest.remove_prefix(crlf + 2);
  }
  if (head.method.empty() || head.method == "CONNECT" || !parseGoRequestUri(head.target).ok() ||
      head.target.find(' ') != std::string::npos) {
    return;  // answered locally (405, 400), never forwarded
  }
  if (head.target[0] != '/' && head.target != "*") {
    // An absolute-form :path (Go's server takes one too) goes out as it came; http-parser only
    // knows letters in a scheme ("a-b.c://h/" is valid URI syntax), so it is no judge of these.
    return;
  }
  struct Reparsed {
    std::string url;
    bool done = false;
  } reparsed;
  http_parser_settings s{};
  s.on_url = [](http_parser* p, const char* at, size_t len) {
    static_cast<Reparsed*>(p->data)->url.append(at, len);
    return 0;
  };
  s.on_headers_complete = [](http_parser* p) {
    static_cast<Reparsed*>(p->data)->done = true;
    http_parser_pause(p, 1);
    return 0;
  };
  http_parser backend;
  http_parser_init(&backend, HTTP_REQUEST);
  backend.data = &reparsed;
  http_parser_execute(&backend, &s, out.data(), out.size());
  const bool known_method =
      http_method_str(static_cast<http_method>(backend.method)) == head.method;
  if (!reparsed.done && !known_method) {
    return;  // http-parser knows a fixed set of methods; a backend in Go takes any token
  }
  FUZZ_CHECK(reparsed.done && HTTP_PARSER_ERRNO(&backend) == HPE_PAUSED,
             out + http_errno_name(HTTP_PARSER_ERRNO(&backend)));
  FUZZ_CHECK(known_method, out);
  FUZZ_CHECK(reparsed.url == head.target, out);
}

class Session {
 public:
  explicit Session(bool goaway_after_first) : goaway_after_first_(goaway_after_first) {
    absl::StatusOr<nghttp2_session*> session = newHttp2ServerSession(
        {&onBeginHeaders, &onHeader, &onFrameReceived, &onDataChunk, &onStreamClosed}, this,
        kMaxStreams, kMaxHeaderBytes);
    FUZZ_CHECK(session.ok(), std::string(session.status().message()));
    session_ = *session;
    sendPending();
  }

  ~Session() { nghttp2_session_del(session_); }

  // Http2Connection::onReadable.
  void receive(std::string_view bytes) {
    if (closing_) {
      return;
    }
    ssize_t n = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(bytes.data()),
                                         bytes.size());
    if (n < 0) {
      FUZZ_CHECK(nghttp2_is_fatal(static_cast<int>(n)) || n == NGHTTP2_ERR_BAD_CLIENT_MAGIC ||
                     n == NGHTTP2_ERR_FLOODED || n == NGHTTP2_ERR_CALLBACK_FAILURE,
                 nghttp2_strerror(static_cast<int>(n)));
      // fail(): what nghttp2 queued (GOAWAY) goes out, then the connection closes.
      const uint8_t* data = nullptr;
      while (nghttp2_session_mem_send(session_, &data) > 0) {
      }
      closing_ = true;
      return;
    }
    FUZZ_CHECK(static_cast<size_t>(n) == bytes.size());
    sendPending();
  }

 private:
  static Session* from(void* self) { return static_cast<Session*>(self); }

  void sendPending() {
    for (;;) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        closing_ = true;
        return;
      }
      if (n == 0) {
        break;
      }
      sent_ += static_cast<size_t>(n);
    }
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      closing_ = true;
    }
  }

  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* self) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;
    }
    Session* s = from(self);
    s->streams_[frame->hd.stream_id] = std::make_unique<Stream>();
    FUZZ_CHECK(s->streams_.size() <= kMaxStreams, std::to_string(s->streams_.size()));
    return 0;
  }

  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* self) {
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    FUZZ_CHECK(!n.empty(), n);
    for (size_t i = n[0] == ':' ? 1 : 0; i < n.size(); ++i) {
      FUZZ_CHECK(isHttpTokenChar(n[i]) && !absl::ascii_isupper(static_cast<unsigned char>(n[i])),
                 n);
    }
    FUZZ_CHECK(v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos, v);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;  // trailers: checked above, not kept here
    }
    auto it = from(self)->streams_.find(frame->hd.stream_id);
    if (it != from(self)->streams_.end()) {
      it->second->addHeader(n, v);
    }
    return 0;
  }

  static int onFrameReceived(nghttp2_session* session, const nghttp2_frame* frame, void* self) {
    Session* s = from(self);
    auto it = s->streams_.find(frame->hd.stream_id);
    if (it == s->streams_.end()) {
      return 0;
    }
    const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;
    }
    Stream& stream = *it->second;
    stream.onHeadersComplete(end_stream);
    checkUpstreamRequest(stream.head);
    // The answer (as a local 4xx or a backend's would be): a status and a small body.
    const std::string status = stream.header_overflow ? "431" : "200";
    const nghttp2_nv nva[] = {
        {reinterpret_cast<uint8_t*>(const_cast<char*>(":status")),
         reinterpret_cast<uint8_t*>(const_cast<char*>(status.data())), 7, status.size(),
         NGHTTP2_NV_FLAG_NONE},
        {reinterpret_cast<uint8_t*>(const_cast<char*>("content-type")),
         reinterpret_cast<uint8_t*>(const_cast<char*>("application/json")), 12, 16,
         NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider provider;
    provider.source.ptr = &stream;
    provider.read_callback = &readBody;
    nghttp2_submit_response(session, frame->hd.stream_id, nva, 2, &provider);
    if (s->goaway_after_first_ && !s->draining_) {
      s->draining_ = true;
      nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(session), NGHTTP2_NO_ERROR,
                            nullptr, 0);
    }
    return 0;
  }

  static ssize_t readBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source* source, void*) {
    auto* stream = static_cast<Stream*>(source->ptr);
    size_t n = std::min(length, stream->response_body.size() - stream->response_sent);
    // NOLINTNEXTLINE(bugprone-not-null-terminated-result): DATA frame bytes, not a C string.
    std::memcpy(buf, stream->response_body.data() + stream->response_sent, n);
    stream->response_sent += n;
    if (stream->response_sent == stream->response_body.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return static_cast<ssize_t>(n);
  }

  static int onDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t*,
                         size_t len, void*) {
    nghttp2_session_consume(session, stream_id, len);  // answered: the body is discarded
    return 0;
  }

  static int onStreamClosed(nghttp2_session*, int32_t stream_id, uint32_t, void* self) {
    from(self)->streams_.erase(stream_id);
    return 0;
  }

  nghttp2_session* session_ = nullptr;
  const bool goaway_after_first_;
  bool draining_ = false;
  bool closing_ = false;
  size_t sent_ = 0;
  std::map<int32_t, std::unique_ptr<Stream>> streams_;
};

}  // namespace
}  // namespace aaproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aaproxy::fuzz;
  if (size == 0) {
    return 0;
  }
  const uint8_t options = data[0];
  std::string input;
  if ((options & 1) != 0) {
    input.append(kPreface);
  }
  input.append(asView(data + 1, size - 1));
  const size_t read_size =
      (options >> 2) == 0 ? input.size() : static_cast<size_t>(options >> 2) * 16;
  Session session((options & 2) != 0);
  for (size_t at = 0; at < input.size(); at += read_size) {
    session.receive(std::string_view(input).substr(at, read_size));
  }
  return 0;
}
