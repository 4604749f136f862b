// The sample backend: a single-threaded plain-HTTP/1.1 server (TCP or Unix socket) that serves
// the sample API, plus debug endpoints that show e2e tests exactly what reached a backend.
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "k8s/status.h"
#include "sample/sample_api.h"

namespace aaproxy::sample {
namespace {

constexpr std::string_view kUsage =
    "usage: sample-backend [--listen 127.0.0.1:PORT | --listen unix:///path.sock]\n"
    "                      [--watch-interval SECONDS] [--log-headers]\n"
    "  --listen          address to serve plain HTTP on (default 127.0.0.1:8080); port 0 picks a\n"
    "                    free port. The bound address is printed as `listening on <addr>`.\n"
    "  --watch-interval  seconds between watch events after the first (default 1; fractions ok)\n"
    "  --log-headers     also log every request's header lines, as `sample-backend: headers <JSON>`\n"
    "                    (the /debug/headers body), for requests whose path only a proxy chooses\n";

constexpr size_t kBytesRefill = 1 << 20;  // /debug/bytes: queue this much per drained buffer

struct Options {
  std::string listen = "127.0.0.1:8080";
  double watchIntervalSeconds = 1.0;
  bool logHeaders = false;
};

struct EventBaseFree {
  void operator()(event_base* base) const { event_base_free(base); }
};
struct EventFree {
  void operator()(event* ev) const { event_free(ev); }
};
struct ListenerFree {
  void operator()(evconnlistener* listener) const { evconnlistener_free(listener); }
};
struct BufferEventFree {
  void operator()(bufferevent* bev) const { bufferevent_free(bev); }
};
struct DigestFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

using EventPtr = std::unique_ptr<event, EventFree>;

timeval toTimeval(double seconds) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
  return tv;
}

// 64 KiB of the /debug/bytes pattern; every block starts at an offset that is a multiple of 256.
const unsigned char* patternBlock() {
  static const auto* block = [] {
    auto* b = new unsigned char[1 << 16];
    for (size_t i = 0; i < (1 << 16); ++i) {
      b[i] = bytePatternAt(i);
    }
    return b;
  }();
  return block;
}

class Server;

// One client connection. Requests are answered strictly in order: the parser is paused at the
// end of each request and resumed only when that request's (possibly streamed) response is done.
class Connection {
 public:
  Connection(Server& server, event_base* base, evutil_socket_t fd);
  ~Connection() = default;

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

 private:
  enum class Stream { kNone, kBytes, kWatch, kEcho, kSlow };

  static int onMessageBegin(http_parser* parser);
  static int onUrl(http_parser* parser, const char* at, size_t length);
  static int onHeaderField(http_parser* parser, const char* at, size_t length);
  static int onHeaderValue(http_parser* parser, const char* at, size_t length);
  static int onHeadersComplete(http_parser* parser);
  static int onBody(http_parser* parser, const char* at, size_t length);
  static int onMessageComplete(http_parser* parser);
  static const http_parser_settings& parserSettings();

  void onRead();
  void onWrite();
  void onEvent(short events);

  void parseInput();
  void handleRequest();
  void rejectUnparsable(http_errno error);
  void startBytes(const Route& route);
  void startWatch(const Route& route);
  void startSlow(const Route& route);
  void startEcho();
  void writeTrailers(const Route& route);
  void fillBytes();
  void watchTick();
  void endWatch();
  void finishResponse();
  void scheduleClose();

  evbuffer* output() { return bufferevent_get_output(bev_.get()); }
  void writeHead(int status, std::string_view contentType, std::optional<uint64_t> contentLength);
  void writeFixed(int status, std::string_view contentType, std::string_view body);
  void writeChunk(std::string_view data);
  std::string headersJson() const;
  std::string bodyJson();
  std::string_view headerValue(std::string_view name) const;

  Server& server_;
  std::unique_ptr<bufferevent, BufferEventFree> bev_;
  http_parser parser_;

  // The request being parsed or answered.
  std::string url_;
  std::vector<std::pair<std::string, std::string>> headers_;
  // A chunked body's trailer section: the parser reports it through the header callbacks.
  std::vector<std::pair<std::string, std::string>> trailers_;
  bool headersComplete_ = false;
  bool lastWasValue_ = false;
  std::string method_;
  int httpMajor_ = 1;
  int httpMinor_ = 1;
  bool messageComplete_ = false;
  bool keepAlive_ = true;
  uint64_t bodyLength_ = 0;
  std::unique_ptr<EVP_MD_CTX, DigestFree> bodyDigest_;

  // The response in progress.
  bool busy_ = false;
  bool abandonLogged_ = false;
  bool inParse_ = false;
  bool closing_ = false;
  bool chunked_ = false;
  Stream stream_ = Stream::kNone;
  uint64_t bytesRemaining_ = 0;
  std::string watchNamespace_;
  uint64_t watchResourceVersion_ = 1;
  EventPtr streamTimer_;    // watch interval or slow delay
  EventPtr watchDeadline_;  // timeoutSeconds
  EventPtr closeEvent_;
};

class Server {
 public:
  Server(event_base* base, const Options& options) : base_(base), options_(options) {}

  event_base* base() { return base_; }
  const Options& options() const { return options_; }

  void accept(evutil_socket_t fd) {
    auto connection = std::make_unique<Connection>(*this, base_, fd);
    Connection* key = connection.get();
    connections_.emplace(key, std::move(connection));
  }

  void remove(Connection* connection) { connections_.erase(connection); }

 private:
  event_base* base_;
  Options options_;
  std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
};

Connection::Connection(Server& server, event_base* base, evutil_socket_t fd)
    : server_(server),
      bev_(bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE)),
      bodyDigest_(EVP_MD_CTX_new()),
      closeEvent_(event_new(
          base, -1, 0,
          [](evutil_socket_t, short, void* arg) {
            auto* self = static_cast<Connection*>(arg);
            self->server_.remove(self);
          },
          this)) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  bufferevent_setcb(
      bev_.get(), [](bufferevent*, void* arg) { static_cast<Connection*>(arg)->onRead(); },
      [](bufferevent*, void* arg) { static_cast<Connection*>(arg)->onWrite(); },
      [](bufferevent*, short events, void* arg) { static_cast<Connection*>(arg)->onEvent(events); },
      this);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
}

const http_parser_settings& Connection::parserSettings() {
  static const http_parser_settings settings = [] {
    http_parser_settings s;
    http_parser_settings_init(&s);
    s.on_message_begin = &Connection::onMessageBegin;
    s.on_url = &Connection::onUrl;
    s.on_header_field = &Connection::onHeaderField;
    s.on_header_value = &Connection::onHeaderValue;
    s.on_headers_complete = &Connection::onHeadersComplete;
    s.on_body = &Connection::onBody;
    s.on_message_complete = &Connection::onMessageComplete;
    return s;
  }();
  return settings;
}

int Connection::onMessageBegin(http_parser* parser) {
  auto* self = static_cast<Connection*>(parser->data);
  self->url_.clear();
  self->headers_.clear();
  self->trailers_.clear();
  self->headersComplete_ = false;
  self->lastWasValue_ = false;
  self->bodyLength_ = 0;
  EVP_DigestInit_ex(self->bodyDigest_.get(), EVP_sha256(), nullptr);
  return 0;
}

int Connection::onUrl(http_parser* parser, const char* at, size_t length) {
  static_cast<Connection*>(parser->data)->url_.append(at, length);
  return 0;
}

int Connection::onHeaderField(http_parser* parser, const char* at, size_t length) {
  auto* self = static_cast<Connection*>(parser->data);
  auto& lines = self->headersComplete_ ? self->trailers_ : self->headers_;
  if (lines.empty() || self->lastWasValue_) {
    lines.emplace_back();
  }
  lines.back().first.append(at, length);
  self->lastWasValue_ = false;
  return 0;
}

int Connection::onHeaderValue(http_parser* parser, const char* at, size_t length) {
  auto* self = static_cast<Connection*>(parser->data);
  auto& lines = self->headersComplete_ ? self->trailers_ : self->headers_;
  if (lines.empty()) {
    lines.emplace_back();
  }
  lines.back().second.append(at, length);
  self->lastWasValue_ = true;
  return 0;
}

int Connection::onHeadersComplete(http_parser* parser) {
  auto* self = static_cast<Connection*>(parser->data);
  self->headersComplete_ = true;
  self->lastWasValue_ = false;
  self->method_ = http_method_str(static_cast<http_method>(parser->method));
  self->httpMajor_ = parser->http_major;
  self->httpMinor_ = parser->http_minor;
  // curl waits a second for this before sending a large upload.
  std::string_view expect = self->headerValue("Expect");
  if (parser->http_major == 1 && parser->http_minor >= 1 && expect.size() == 12 &&
      strncasecmp(expect.data(), "100-continue", 12) == 0) {
    evbuffer_add(self->output(), "HTTP/1.1 100 Continue\r\n\r\n", 25);
  }
  return 0;
}

int Connection::onBody(http_parser* parser, const char* at, size_t length) {
  auto* self = static_cast<Connection*>(parser->data);
  self->bodyLength_ += length;
  EVP_DigestUpdate(self->bodyDigest_.get(), at, length);
  return 0;
}

int Connection::onMessageComplete(http_parser* parser) {
  auto* self = static_cast<Connection*>(parser->data);
  self->messageComplete_ = true;
  self->keepAlive_ = http_should_keep_alive(parser) != 0;
  http_parser_pause(parser, 1);
  return 0;
}

std::string_view Connection::headerValue(std::string_view name) const {
  for (const auto& [n, v] : headers_) {
    if (n.size() == name.size() && strncasecmp(n.data(), name.data(), n.size()) == 0) {
      return v;
    }
  }
  return {};
}

void Connection::onRead() {
  if (stream_ == Stream::kEcho) {
    evbuffer_add_buffer(output(), bufferevent_get_input(bev_.get()));
    return;
  }
  parseInput();
}

void Connection::parseInput() {
  inParse_ = true;
  evbuffer* input = bufferevent_get_input(bev_.get());
  while (!busy_ && !closing_ && evbuffer_get_length(input) > 0) {
    evbuffer_iovec segment;
    if (evbuffer_peek(input, -1, nullptr, &segment, 1) < 1 || segment.iov_len == 0) {
      break;
    }
    size_t parsed = http_parser_execute(
        &parser_, &parserSettings(), static_cast<const char*>(segment.iov_base), segment.iov_len);
    evbuffer_drain(input, parsed);
    if (messageComplete_) {
      messageComplete_ = false;
      http_parser_pause(&parser_, 0);
      handleRequest();
      continue;
    }
    auto error = HTTP_PARSER_ERRNO(&parser_);
    if (error != HPE_OK) {
      rejectUnparsable(error);
      break;
    }
  }
  inParse_ = false;
}

void Connection::rejectUnparsable(http_errno error) {
  int status = error == HPE_HEADER_OVERFLOW ? 431 : 400;
  std::string body =
      failureStatusJson(status, status == 431 ? "RequestHeaderFieldsTooLarge" : "BadRequest",
                        http_errno_description(error), StatusDetails{});
  keepAlive_ = false;
  writeFixed(status, "application/json", body);
  fprintf(stderr, "sample-backend: unparsable request: %s -> %d\n", http_errno_name(error), status);
  finishResponse();
}

void Connection::handleRequest() {
  Route route = routeRequest(method_, url_);
  static constexpr const char* kKindNames[] = {"fixed",      "watch stream",       "debug/headers",
                                               "debug/body", "debug/bytes stream", "debug/echo",
                                               "debug/slow", "debug/trailers"};
  std::string outcome = route.kind == RouteKind::kFixed ? std::to_string(route.status)
                                                        : kKindNames[static_cast<int>(route.kind)];
  fprintf(stderr, "sample-backend: %s %s -> %s\n", method_.c_str(), url_.c_str(), outcome.c_str());
  if (server_.options().logHeaders) {
    fprintf(stderr, "sample-backend: headers %s\n", headersJson().c_str());
  }
  if (parser_.upgrade) {
    if (route.kind == RouteKind::kDebugEcho) {
      startEcho();
      return;
    }
    keepAlive_ = false;  // whatever follows the request is not HTTP any more
  }
  switch (route.kind) {
    case RouteKind::kFixed:
      writeFixed(route.status, route.contentType, route.body);
      break;
    case RouteKind::kDebugHeaders:
      writeFixed(200, "application/json", headersJson());
      break;
    case RouteKind::kDebugBody:
      writeFixed(200, "application/json", bodyJson());
      break;
    case RouteKind::kDebugEcho:
      writeFixed(400, "application/json",
                 failureStatusJson(400, "BadRequest",
                                   "/debug/echo needs Connection: Upgrade and an Upgrade header",
                                   StatusDetails{}));
      break;
    case RouteKind::kDebugBytes:
      startBytes(route);
      return;
    case RouteKind::kWatch:
      startWatch(route);
      return;
    case RouteKind::kDebugSlow:
      startSlow(route);
      return;
    case RouteKind::kDebugTrailers:
      writeTrailers(route);
      break;
  }
  finishResponse();
}

void Connection::writeHead(int status, std::string_view contentType,
                           std::optional<uint64_t> contentLength) {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " ";
  head += status == 101 ? std::string_view("Switching Protocols") : httpReasonPhrase(status);
  head += "\r\n";
  if (!contentType.empty()) {
    head += "Content-Type: ";
    head += contentType;
    head += "\r\n";
  }
  if (status != 101) {
    head += "X-Content-Type-Options: nosniff\r\n";
  }
  if (contentLength.has_value()) {
    head += "Content-Length: " + std::to_string(*contentLength) + "\r\n";
  } else if (chunked_) {
    head += "Transfer-Encoding: chunked\r\n";
  }
  if (status != 101) {
    if (!keepAlive_) {
      head += "Connection: close\r\n";
    } else if (httpMajor_ == 1 && httpMinor_ == 0) {
      head += "Connection: keep-alive\r\n";
    }
  }
  head += "\r\n";
  evbuffer_add(output(), head.data(), head.size());
}

void Connection::writeFixed(int status, std::string_view contentType, std::string_view body) {
  chunked_ = false;
  writeHead(status, contentType, body.size());
  if (method_ != "HEAD") {
    evbuffer_add(output(), body.data(), body.size());
  }
}

void Connection::writeChunk(std::string_view data) {
  if (chunked_) {
    char size[32];
    int n = snprintf(size, sizeof(size), "%zx\r\n", data.size());
    evbuffer_add(output(), size, n);
    evbuffer_add(output(), data.data(), data.size());
    evbuffer_add(output(), "\r\n", 2);
  } else {
    evbuffer_add(output(), data.data(), data.size());
  }
}

std::string Connection::headersJson() const {
  std::string out = "{\"method\":";
  appendGoJsonString(out, method_);
  out += ",\"target\":";
  appendGoJsonString(out, url_);
  out += ",\"httpVersion\":\"" + std::to_string(httpMajor_) + "." + std::to_string(httpMinor_) +
         "\",\"headers\":[";
  for (size_t i = 0; i < headers_.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    out += '[';
    appendGoJsonString(out, headers_[i].first);
    out += ',';
    appendGoJsonString(out, headers_[i].second);
    out += ']';
  }
  out += "]}\n";
  return out;
}

std::string Connection::bodyJson() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digestLength = 0;
  EVP_DigestFinal_ex(bodyDigest_.get(), digest, &digestLength);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < digestLength; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xf];
  }
  std::string out = "{\"length\":" + std::to_string(bodyLength_) + ",\"sha256\":\"" + hex +
                    "\",\"transferEncoding\":";
  appendGoJsonString(out, headerValue("Transfer-Encoding"));
  out += ",\"contentLength\":";
  appendGoJsonString(out, headerValue("Content-Length"));
  if (!trailers_.empty()) {
    // Only when some came, so that the body of every other request stays as it was.
    out += ",\"trailers\":[";
    for (size_t i = 0; i < trailers_.size(); ++i) {
      out += i > 0 ? ",[" : "[";
      appendGoJsonString(out, trailers_[i].first);
      out += ',';
      appendGoJsonString(out, trailers_[i].second);
      out += ']';
    }
    out += ']';
  }
  out += "}\n";
  return out;
}

void Connection::writeTrailers(const Route& route) {
  if (httpMajor_ == 1 && httpMinor_ == 0) {
    writeFixed(200, route.contentType, route.body);  // no chunked coding, so no trailers
    return;
  }
  chunked_ = true;
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: " + route.contentType +
                     "\r\nX-Content-Type-Options: nosniff\r\n";
  if (!route.trailers.empty()) {
    head += "Trailer: ";
    for (size_t i = 0; i < route.trailers.size(); ++i) {
      head += (i > 0 ? ", " : "") + route.trailers[i].first;
    }
    head += "\r\n";
  }
  head += "Transfer-Encoding: chunked\r\n";
  if (!keepAlive_) {
    head += "Connection: close\r\n";
  }
  head += "\r\n";
  evbuffer_add(output(), head.data(), head.size());
  if (method_ == "HEAD") {
    return;
  }
  writeChunk(route.body);
  std::string last = "0\r\n";
  for (const auto& [name, value] : route.trailers) {
    last.append(name).append(": ").append(value).append("\r\n");
  }
  last += "\r\n";
  evbuffer_add(output(), last.data(), last.size());
}

void Connection::startEcho() {
  busy_ = true;
  stream_ = Stream::kEcho;
  chunked_ = false;
  std::string head = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ";
  head += headerValue("Upgrade");
  head += "\r\n\r\n";
  evbuffer_add(output(), head.data(), head.size());
  // Bytes that followed the request in the same read are already tunnel data.
  evbuffer_add_buffer(output(), bufferevent_get_input(bev_.get()));
}

void Connection::startBytes(const Route& route) {
  busy_ = true;
  chunked_ = false;
  writeHead(200, route.contentType, route.bytes);
  if (method_ == "HEAD" || route.bytes == 0) {
    finishResponse();
    return;
  }
  stream_ = Stream::kBytes;
  bytesRemaining_ = route.bytes;
  fillBytes();
}

void Connection::fillBytes() {
  size_t queued = 0;
  while (bytesRemaining_ > 0 && queued < kBytesRefill) {
    size_t n = bytesRemaining_ < (1 << 16) ? static_cast<size_t>(bytesRemaining_) : (1 << 16);
    evbuffer_add_reference(output(), patternBlock(), n, nullptr, nullptr);
    bytesRemaining_ -= n;
    queued += n;
  }
  if (bytesRemaining_ == 0) {
    stream_ = Stream::kNone;
    finishResponse();
  }
}

void Connection::startWatch(const Route& route) {
  busy_ = true;
  stream_ = Stream::kWatch;
  // HTTP/1.0 has no chunked coding: the stream then ends with the connection.
  chunked_ = !(httpMajor_ == 1 && httpMinor_ == 0);
  if (!chunked_) {
    keepAlive_ = false;
  }
  writeHead(200, "application/json", std::nullopt);
  watchNamespace_ = route.ns;
  watchResourceVersion_ = 1;
  if (method_ == "HEAD") {
    endWatch();
    return;
  }
  writeChunk(watchEventJson("ADDED", watchNamespace_, watchResourceVersion_));
  event_base* base = bufferevent_get_base(bev_.get());
  streamTimer_.reset(event_new(
      base, -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) { static_cast<Connection*>(arg)->watchTick(); }, this));
  timeval interval = toTimeval(server_.options().watchIntervalSeconds);
  event_add(streamTimer_.get(), &interval);
  if (route.timeoutSeconds > 0) {
    watchDeadline_.reset(event_new(
        base, -1, 0,
        [](evutil_socket_t, short, void* arg) { static_cast<Connection*>(arg)->endWatch(); },
        this));
    timeval deadline = toTimeval(static_cast<double>(route.timeoutSeconds));
    event_add(watchDeadline_.get(), &deadline);
  }
}

void Connection::watchTick() {
  ++watchResourceVersion_;
  writeChunk(watchEventJson("MODIFIED", watchNamespace_, watchResourceVersion_));
}

void Connection::endWatch() {
  streamTimer_.reset();
  watchDeadline_.reset();
  stream_ = Stream::kNone;
  if (chunked_) {
    evbuffer_add(output(), "0\r\n\r\n", 5);
  }
  finishResponse();
}

void Connection::startSlow(const Route& route) {
  busy_ = true;
  stream_ = Stream::kSlow;
  streamTimer_.reset(event_new(
      bufferevent_get_base(bev_.get()), -1, 0,
      [](evutil_socket_t, short, void* arg) {
        auto* self = static_cast<Connection*>(arg);
        self->stream_ = Stream::kNone;
        self->writeFixed(200, "text/plain", "slow\n");
        self->finishResponse();
      },
      this));
  timeval delay = toTimeval(static_cast<double>(route.delayMs) / 1000.0);
  event_add(streamTimer_.get(), &delay);
}

void Connection::finishResponse() {
  busy_ = false;
  if (!keepAlive_) {
    closing_ = true;
    if (evbuffer_get_length(output()) == 0) {
      scheduleClose();
    }
    return;
  }
  if (!inParse_) {
    parseInput();
  }
}

void Connection::scheduleClose() {
  bufferevent_disable(bev_.get(), EV_READ | EV_WRITE);
  event_active(closeEvent_.get(), 0, 0);
}

void Connection::onWrite() {
  if (stream_ == Stream::kBytes) {
    fillBytes();
  }
  if (closing_ && evbuffer_get_length(output()) == 0) {
    scheduleClose();
  }
}

void Connection::onEvent(short events) {
  if (busy_ && !abandonLogged_ && (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
    // Tells tests that the client (a proxy) gave this connection up mid-response rather than
    // keeping it for another request.
    abandonLogged_ = true;
    fprintf(stderr, "sample-backend: connection closed by the client during %s %s\n",
            method_.c_str(), url_.c_str());
  }
  if (events & BEV_EVENT_EOF) {
    // The client is done sending. Finish what it asked for, then close.
    keepAlive_ = false;
    if (stream_ == Stream::kWatch) {
      scheduleClose();
      return;
    }
    if (stream_ == Stream::kBytes || stream_ == Stream::kSlow) {
      return;
    }
    closing_ = true;
    stream_ = Stream::kNone;
    if (evbuffer_get_length(output()) == 0) {
      scheduleClose();
    }
    return;
  }
  if (events & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
    scheduleClose();
  }
}

std::optional<Options> parseFlags(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      fputs(kUsage.data(), stdout);
      exit(0);
    }
    std::string_view name = arg;
    std::optional<std::string_view> value;
    if (size_t eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[i + 1];
    }
    auto consume = [&]() -> std::optional<std::string_view> {
      if (arg.find('=') == std::string_view::npos) {
        ++i;
      }
      return value;
    };
    if (name == "--listen") {
      auto v = consume();
      if (!v.has_value() || v->empty()) {
        fprintf(stderr, "sample-backend: --listen needs an address\n");
        return std::nullopt;
      }
      options.listen = std::string(*v);
    } else if (name == "--watch-interval") {
      auto v = consume();
      double seconds = 0;
      if (v.has_value()) {
        std::string s(*v);
        char* end = nullptr;
        seconds = strtod(s.c_str(), &end);
        if (end == s.c_str() || *end != '\0') {
          seconds = -1;
        }
      }
      if (!v.has_value() || !(seconds > 0) || !std::isfinite(seconds)) {
        fprintf(stderr, "sample-backend: --watch-interval needs a positive number of seconds\n");
        return std::nullopt;
      }
      options.watchIntervalSeconds = seconds;
    } else if (arg == "--log-headers") {
      options.logHeaders = true;
    } else {
      fprintf(stderr, "sample-backend: unknown flag %s\n%s", argv[i], kUsage.data());
      return std::nullopt;
    }
  }
  return options;
}

// "127.0.0.1:8080", "[::1]:0". Unlike evutil_parse_sockaddr_port, port 0 is allowed.
bool parseHostPort(const std::string& listen, sockaddr_storage& address, int& addressLength) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return false;
  }
  std::string host = listen.substr(0, colon);
  std::string_view portText = std::string_view(listen).substr(colon + 1);
  int port = -1;
  auto [end, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (ec != std::errc() || end != portText.data() + portText.size() || port < 0 || port > 65535) {
    return false;
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    addressLength = sizeof(sockaddr_in6);
    return inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &in6->sin6_addr) == 1;
  }
  auto* in4 = reinterpret_cast<sockaddr_in*>(&address);
  in4->sin_family = AF_INET;
  in4->sin_port = htons(static_cast<uint16_t>(port));
  addressLength = sizeof(sockaddr_in);
  return inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1;
}

int run(int argc, char** argv) {
  auto options = parseFlags(argc, argv);
  if (!options.has_value()) {
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<event_base, EventBaseFree> base(event_base_new());
  Server server(base.get(), *options);

  sockaddr_storage address{};
  int addressLength = sizeof(address);
  std::string unixPath;
  constexpr std::string_view kUnixScheme = "unix://";
  if (options->listen.rfind(kUnixScheme, 0) == 0) {
    unixPath = options->listen.substr(kUnixScheme.size());
    auto* un = reinterpret_cast<sockaddr_un*>(&address);
    if (unixPath.empty() || unixPath.size() >= sizeof(un->sun_path)) {
      fprintf(stderr, "sample-backend: --listen: bad unix socket path %s\n", unixPath.c_str());
      return 2;
    }
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, unixPath.c_str(), unixPath.size() + 1);
    addressLength = static_cast<int>(offsetof(sockaddr_un, sun_path) + unixPath.size() + 1);
    struct stat st;
    if (stat(unixPath.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      unlink(unixPath.c_str());  // a stale socket from an earlier run
    }
  } else if (!parseHostPort(options->listen, address, addressLength)) {
    fprintf(stderr, "sample-backend: --listen: cannot parse address %s (want HOST:PORT)\n",
            options->listen.c_str());
    return 2;
  }

  std::unique_ptr<evconnlistener, ListenerFree> listener(evconnlistener_new_bind(
      base.get(),
      [](evconnlistener*, evutil_socket_t fd, sockaddr* peer, int, void* arg) {
        if (peer->sa_family == AF_INET || peer->sa_family == AF_INET6) {
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        static_cast<Server*>(arg)->accept(fd);
      },
      &server, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1, reinterpret_cast<sockaddr*>(&address),
      addressLength));
  if (!listener) {
    fprintf(stderr, "sample-backend: --listen %s: cannot listen: %s\n", options->listen.c_str(),
            strerror(errno));
    return 1;
  }

  if (!unixPath.empty()) {
    printf("listening on unix://%s\n", unixPath.c_str());
  } else {
    sockaddr_storage bound{};
    socklen_t boundLength = sizeof(bound);
    getsockname(evconnlistener_get_fd(listener.get()), reinterpret_cast<sockaddr*>(&bound),
                &boundLength);
    char host[INET6_ADDRSTRLEN] = {};
    int port = 0;
    if (bound.ss_family == AF_INET6) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&bound);
      inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
      port = ntohs(in6->sin6_port);
      printf("listening on [%s]:%d\n", host, port);
    } else {
      auto* in4 = reinterpret_cast<sockaddr_in*>(&bound);
      inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
      port = ntohs(in4->sin_port);
      printf("listening on %s:%d\n", host, port);
    }
  }
  fflush(stdout);

  auto stop = [](evutil_socket_t, short, void* arg) {
    event_base_loopexit(static_cast<event_base*>(arg), nullptr);
  };
  EventPtr sigterm(evsignal_new(base.get(), SIGTERM, stop, base.get()));
  EventPtr sigint(evsignal_new(base.get(), SIGINT, stop, base.get()));
  event_add(sigterm.get(), nullptr);
  event_add(sigint.get(), nullptr);

  event_base_dispatch(base.get());
  if (!unixPath.empty()) {
    unlink(unixPath.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace aaproxy::sample

int main(int argc, char** argv) { return aaproxy::sample::run(argc, argv); }
