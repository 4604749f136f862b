// HTTP/1.1 request parsing as ClientConnection does it: http-parser's callbacks feeding a
// HeaderLineCollector and a RequestHead, paused at the end of each head and each message,
// over a byte stream that arrives in fuzzer-chosen pieces (pipelining, chunked bodies,
// trailers, 100-continue, upgrades). Then the request the proxy would send to the backend.
//
// Input: the first line is the read schedule (each byte picks the size of the next network
// read, cycling); the rest is what the client sent.
//
// Invariants:
//  - the head holds exactly the header lines http-parser delivered before the end of the head,
//    and the trailers those after it: trailer lines never become header lines of this message
//    or of the next one;
//  - names are tokens and values hold no control byte but tab (http-parser, not built strict,
//    lets spaces into names and never checks a value's first byte: the collector refuses them);
//  - the messages (heads, bodies, whether it ends in an error) do not depend on how the stream
//    was split;
//  - serializeUpstreamRequest: no bare CR or LF inside a line, no Expect, one X-Forwarded-For,
//    never Content-Length with Transfer-Encoding; it re-parses with http-parser to the same
//    method, target, upgrade flag and body framing (what the backend will read as the body is
//    what the proxy forwards as the body).
#include <http_parser.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "fuzz/fuzz_input.h"
#include "k8s/header_map.h"
#include "proxy/http_message.h"

namespace aaproxy::fuzz {
namespace {

// Small limits, so that short inputs reach the 414/431 paths (the proxy's are 64 KiB / 1 MiB).
constexpr size_t kMaxRequestLineBytes = 512;
constexpr size_t kMaxHeaderBytes = 2048;
constexpr std::string_view kClientIp = "10.0.0.1";
constexpr std::string_view kIdentityLines = "X-Remote-User: fuzz\r\nX-Remote-Group: g\r\n";

struct Message {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  bool chunked = false;
  bool upgrade = false;
  bool keep_alive = false;
  std::optional<uint64_t> content_length;
  std::string body;
  std::vector<std::pair<std::string, std::string>> trailers;

  bool operator==(const Message&) const = default;
};

struct Outcome {
  std::vector<Message> messages;  // heads (and bodies) of the messages seen to completion
  std::vector<Message> heads;     // every head seen, complete or not
  int error_status = 0;           // what the proxy would answer (or 0: none / mid-body close)
  bool tunnel = false;

  // The status of an error may depend on the split: a long target read in pieces crosses the
  // 414 limit before http-parser sees a bad byte further on that makes the whole read a 400.
  bool operator==(const Outcome& o) const {
    return messages == o.messages && heads == o.heads && tunnel == o.tunnel &&
           (error_status != 0) == (o.error_status != 0);
  }
};

std::string describe(const Outcome& o) {
  std::string out;
  auto head = [&out](const Message& m) {
    out += m.method;
    out += ' ';
    out += m.target;
    out += m.chunked ? " chunked" : "";
    out += m.upgrade ? " upgrade" : "";
    out += m.keep_alive ? " keep-alive" : "";
    if (m.content_length) {
      out += " length=";
      out += std::to_string(*m.content_length);
    }
    out += " {";
    for (const auto& [name, value] : m.headers) {
      out.append(name).append(": ").append(value).append("; ");
    }
    out += "}";
  };
  for (const Message& m : o.heads) {
    out += "[head ";
    head(m);
    out += "] ";
  }
  for (const Message& m : o.messages) {
    out += "[message ";
    head(m);
    out += " body " + std::to_string(m.body.size()) + "] ";
  }
  out += "error " + std::to_string(o.error_status) + (o.tunnel ? " tunnel" : "");
  return out;
}

bool isTokenChar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
    return true;
  }
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// The proxy's request side of one connection, as in client_connection.cc.
class Connection {
 public:
  explicit Connection(bool accept_upgrades) : accept_upgrades_(accept_upgrades) {
    http_parser_init(&parser_, HTTP_REQUEST);
    parser_.data = this;
  }

  // One network read: appends to the input buffer and parses what the current state allows.
  void receive(std::string_view bytes) {
    if (closed_) {
      return;
    }
    input_.append(bytes);
    while (!input_.empty() && !closed_) {
      const size_t before = input_.size();
      size_t parsed = http_parser_execute(&parser_, &settings(), input_.data(), input_.size());
      input_.erase(0, parsed);
      http_errno err = HTTP_PARSER_ERRNO(&parser_);
      if (err == HPE_PAUSED) {
        Pause reason = pause_;
        pause_ = Pause::kNone;
        if (reason == Pause::kHeadComplete) {
          onHead();
        } else if (reason == Pause::kMessageComplete) {
          onMessageComplete();
        }
        if (!closed_) {
          http_parser_pause(&parser_, 0);
        }
        continue;
      }
      if (err != HPE_OK) {
        int status = parse_error_status_ != 0 ? parse_error_status_ : 400;
        if (err == HPE_HEADER_OVERFLOW) {
          status = 431;
        }
        outcome_.error_status = in_head_ ? status : 0;
        closed_ = true;
        return;
      }
      if (parsed < before) {
        closed_ = true;  // upgrade data after a head: the proxy closes (or tunnels, above)
        return;
      }
    }
  }

  const Outcome& outcome() const { return outcome_; }

 private:
  enum class Pause { kNone, kHeadComplete, kMessageComplete };

  static Connection* from(http_parser* p) { return static_cast<Connection*>(p->data); }

  static const http_parser_settings& settings() {
    static const http_parser_settings s = [] {
      http_parser_settings s{};
      s.on_message_begin = &onMessageBegin;
      s.on_url = &onUrl;
      s.on_header_field = &onHeaderField;
      s.on_header_value = &onHeaderValue;
      s.on_headers_complete = &onHeadersComplete;
      s.on_body = &onBody;
      s.on_message_complete = &onMessageCompleteCallback;
      return s;
    }();
    return s;
  }

  // Not used by the proxy: an independent count of the header lines of the current head.
  static int onMessageBegin(http_parser* p) {
    Connection* c = from(p);
    c->in_head_ = true;
    c->raw_lines_ = 0;
    c->raw_trailer_lines_ = 0;
    c->last_was_field_ = false;
    return 0;
  }

  static int onUrl(http_parser* p, const char* at, size_t len) {
    Connection* c = from(p);
    c->request_line_bytes_ += len;
    if (c->request_line_bytes_ > kMaxRequestLineBytes) {
      c->parse_error_status_ = 414;
      return 1;
    }
    c->head_.target.append(at, len);
    return 0;
  }

  static int onHeaderField(http_parser* p, const char* at, size_t len) {
    Connection* c = from(p);
    if (!c->last_was_field_) {
      ++(c->in_head_ ? c->raw_lines_ : c->raw_trailer_lines_);
    }
    c->last_was_field_ = true;
    c->header_bytes_ += len;
    if (c->header_bytes_ > kMaxHeaderBytes) {
      c->parse_error_status_ = 431;
      return 1;
    }
    if (!c->lines_.field(c->head_.headers, c->head_.trailers, at, len)) {
      c->parse_error_status_ = 400;  // whitespace (or another non-token byte) in a name
      return 1;
    }
    return 0;
  }

  static int onHeaderValue(http_parser* p, const char* at, size_t len) {
    Connection* c = from(p);
    c->last_was_field_ = false;
    c->header_bytes_ += len;
    if (c->header_bytes_ > kMaxHeaderBytes) {
      c->parse_error_status_ = 431;
      return 1;
    }
    if (!c->lines_.value(c->head_.headers, c->head_.trailers, at, len)) {
      c->parse_error_status_ = 400;  // a control byte in a value
      return 1;
    }
    return 0;
  }

  static int onHeadersComplete(http_parser* p) {
    Connection* c = from(p);
    c->in_head_ = false;
    c->last_was_field_ = false;
    c->lines_.headEnded();
    RequestHead& head = c->head_;
    head.method = http_method_str(static_cast<http_method>(p->method));
    head.http_major = p->http_major;
    head.http_minor = p->http_minor;
    head.keep_alive = http_should_keep_alive(p) != 0;
    head.upgrade = p->upgrade != 0;
    head.chunked = (p->flags & F_CHUNKED) != 0;
    if (head.headers.has("Content-Length") && !head.chunked) {
      head.content_length = p->content_length;
    }
    c->pause_ = Pause::kHeadComplete;
    http_parser_pause(p, 1);
    return 0;
  }

  static int onBody(http_parser* p, const char* at, size_t len) {
    from(p)->body_.append(at, len);
    return 0;
  }

  static int onMessageCompleteCallback(http_parser* p) {
    Connection* c = from(p);
    c->pause_ = Pause::kMessageComplete;
    http_parser_pause(p, 1);
    return 0;
  }

  Message snapshot() const {
    Message m;
    m.method = head_.method;
    m.target = head_.target;
    for (const Header& h : head_.headers.entries()) {
      m.headers.emplace_back(h.name, h.value);
    }
    m.chunked = head_.chunked;
    m.upgrade = head_.upgrade;
    m.keep_alive = head_.keep_alive;
    m.content_length = head_.content_length;
    return m;
  }

  // What startAdmission .. startForwarding do with the head, checked.
  void onHead() {
    FUZZ_CHECK(head_.headers.size() == raw_lines_, head_.target);
    for (const Header& h : head_.headers.entries()) {
      FUZZ_CHECK(!h.name.empty());
      for (unsigned char ch : h.name) {
        FUZZ_CHECK(isTokenChar(ch), h.name);
      }
      for (unsigned char ch : h.value) {
        FUZZ_CHECK((ch >= 0x20 && ch != 0x7f) || ch == '\t', h.value);
      }
    }
    FUZZ_CHECK(head_.hasBody() == (head_.chunked || head_.content_length.value_or(0) > 0));
    head_at_end_ = snapshot();
    outcome_.heads.push_back(head_at_end_);
    checkUpstreamRequest();
  }

  void checkUpstreamRequest() {
    std::string out = "stale bytes of the previous request";
    serializeUpstreamRequest(head_, kClientIp, kIdentityLines, out);
    FUZZ_CHECK(out.size() >= 4 && out.compare(out.size() - 4, 4, "\r\n\r\n") == 0, out);
    std::string_view head_text(out.data(), out.size() - 2);  // every line ends with CRLF
    std::vector<std::string_view> lines;
    size_t start = 0;
    while (start < head_text.size()) {
      size_t crlf = head_text.find("\r\n", start);
      FUZZ_CHECK(crlf != std::string_view::npos, out);
      std::string_view line = head_text.substr(start, crlf - start);
      FUZZ_CHECK(line.find_first_of("\r\n") == std::string_view::npos, out);
      lines.push_back(line);
      start = crlf + 2;
    }
    FUZZ_CHECK(!lines.empty(), out);
    FUZZ_CHECK(lines[0] == head_.method + " " + head_.target + " HTTP/1.1", out);
    size_t forwarded_for = 0;
    bool content_length = false;
    bool transfer_encoding = false;
    for (size_t i = 1; i < lines.size(); ++i) {
      size_t colon = lines[i].find(':');
      FUZZ_CHECK(colon != std::string_view::npos && colon > 0, out);
      std::string_view name = lines[i].substr(0, colon);
      FUZZ_CHECK(!equalsIgnoreCase(name, "Expect"), out);
      forwarded_for += equalsIgnoreCase(name, "X-Forwarded-For") ? 1 : 0;
      content_length |= equalsIgnoreCase(name, "Content-Length");
      transfer_encoding |= equalsIgnoreCase(name, "Transfer-Encoding");
    }
    FUZZ_CHECK(forwarded_for == 1, out);
    FUZZ_CHECK(!(content_length && transfer_encoding), out);

    // The backend's view: http-parser over what the proxy sends, up to the end of the head.
    struct Reparsed {
      std::string url;
      size_t lines = 0;
      bool last_was_field = false;
      bool done = false;
    } reparsed;
    http_parser_settings s{};
    s.on_url = [](http_parser* p, const char* at, size_t len) {
      static_cast<Reparsed*>(p->data)->url.append(at, len);
      return 0;
    };
    s.on_header_field = [](http_parser* p, const char*, size_t) {
      auto* r = static_cast<Reparsed*>(p->data);
      r->lines += r->last_was_field ? 0 : 1;
      r->last_was_field = true;
      return 0;
    };
    s.on_header_value = [](http_parser* p, const char*, size_t) {
      static_cast<Reparsed*>(p->data)->last_was_field = false;
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
    http_errno err = HTTP_PARSER_ERRNO(&backend);
    FUZZ_CHECK(reparsed.done && err == HPE_PAUSED, out + http_errno_name(err));
    FUZZ_CHECK(http_method_str(static_cast<http_method>(backend.method)) == head_.method, out);
    FUZZ_CHECK(reparsed.url == head_.target, out);
    FUZZ_CHECK(reparsed.lines == lines.size() - 1, out);
    FUZZ_CHECK((backend.upgrade != 0) == head_.upgrade, out);
    // The body framing: the proxy re-chunks a chunked body and copies any other as it is.
    const bool backend_chunked = (backend.flags & F_CHUNKED) != 0;
    FUZZ_CHECK(backend_chunked == head_.chunked, out);
    if (!head_.chunked) {
      const bool backend_has_length = (backend.flags & F_CONTENTLENGTH) != 0;
      FUZZ_CHECK(backend_has_length == head_.content_length.has_value(), out);
      if (backend_has_length) {
        FUZZ_CHECK(backend.content_length == *head_.content_length, out);
      }
    }
  }

  // onRequestComplete + finishCycle (the response is taken as already written).
  void onMessageComplete() {
    // Trailers came after the head went out: the head must be as it was then, and they are all
    // in their own map.
    FUZZ_CHECK(snapshot() == head_at_end_, head_.target);
    FUZZ_CHECK(head_.trailers.size() == raw_trailer_lines_, head_.target);
    FUZZ_CHECK(head_.chunked || head_.trailers.empty(), head_.target);
    Message m = snapshot();
    m.body = body_;
    for (const Header& h : head_.trailers.entries()) {
      m.trailers.emplace_back(h.name, h.value);
    }
    outcome_.messages.push_back(std::move(m));
    if (head_.upgrade && accept_upgrades_) {
      outcome_.tunnel = true;  // 101: the rest of the connection is a byte pipe
      closed_ = true;
      return;
    }
    if (!head_.keep_alive) {
      closed_ = true;
      return;
    }
    head_.reset();
    lines_.reset();
    body_.clear();
    in_head_ = true;  // phase kAwaitingRequest: bytes that follow are the next head
    raw_lines_ = 0;
    raw_trailer_lines_ = 0;
    last_was_field_ = false;
    request_line_bytes_ = 0;
    header_bytes_ = 0;
    parse_error_status_ = 0;
  }

  const bool accept_upgrades_;
  http_parser parser_;
  std::string input_;
  Pause pause_ = Pause::kNone;
  bool closed_ = false;
  RequestHead head_;
  HeaderLineCollector lines_;
  size_t request_line_bytes_ = 0;
  size_t header_bytes_ = 0;
  int parse_error_status_ = 0;
  std::string body_;
  Message head_at_end_;
  // The independent view.
  bool in_head_ = true;
  bool last_was_field_ = false;
  size_t raw_lines_ = 0;
  size_t raw_trailer_lines_ = 0;
  Outcome outcome_;
};

}  // namespace
}  // namespace aaproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aaproxy::fuzz;
  auto [schedule, stream] = splitFirstLine(asView(data, size));
  schedule = schedule.substr(0, 16);
  const bool accept_upgrades = !schedule.empty() && (schedule[0] & 1) != 0;

  Connection split(accept_upgrades);
  size_t at = 0;
  for (size_t read = 0; at < stream.size(); ++read) {
    size_t n = schedule.empty()
                   ? stream.size()
                   : 1 + static_cast<unsigned char>(schedule[read % schedule.size()]) % 64;
    n = std::min(n, stream.size() - at);
    split.receive(stream.substr(at, n));
    at += n;
  }

  Connection whole(accept_upgrades);
  whole.receive(stream);
  FUZZ_CHECK(split.outcome() == whole.outcome(),
             "split: " + describe(split.outcome()) + "\nwhole: " + describe(whole.outcome()));
  return 0;
}
