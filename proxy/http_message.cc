// Header rewriting for forwarding; Go's httputil.ReverseProxy is the behavioural reference.
#include "proxy/http_message.h"

#include <algorithm>
#include <charconv>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "k8s/status.h"

namespace aaproxy {
namespace {

absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr std::string_view kHopByHop[] = {
    "Connection",
    "Proxy-Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Te",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
};

void appendHeader(std::string& out, std::string_view name, std::string_view value) {
  // Plain appends: StrAppend's general path costs twice as much for a dozen short lines.
  out.append(name);
  out.append(": ", 2);
  out.append(value);
  out.append("\r\n", 2);
}

void appendHeaders(std::string& out, const HeaderMap& headers) {
  for (const Header& h : headers.entries()) {
    appendHeader(out, h.name, h.value);
  }
}

// Go's httpguts badTrailer, plus Upgrade (hop-by-hop): fields that frame, route, authenticate or
// modify a message, which a trailer section must not carry (RFC 9110 §6.5.1). Names beginning
// "If-" are refused too.
constexpr std::string_view kNotTrailers[] = {"Authorization",
                                             "Cache-Control",
                                             "Connection",
                                             "Content-Encoding",
                                             "Content-Length",
                                             "Content-Range",
                                             "Content-Type",
                                             "Expect",
                                             "Host",
                                             "Keep-Alive",
                                             "Max-Forwards",
                                             "Pragma",
                                             "Proxy-Authenticate",
                                             "Proxy-Authorization",
                                             "Proxy-Connection",
                                             "Range",
                                             "Realm",
                                             "Te",
                                             "Trailer",
                                             "Transfer-Encoding",
                                             "Upgrade",
                                             "Www-Authenticate"};

bool isTokenName(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (!absl::ascii_isalnum(u) &&
        std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

// Whether a Te field value lists the "trailers" token (httpguts.HeaderValuesContainsToken).
bool listsTrailersToken(std::string_view value) {
  for (absl::string_view token : absl::StrSplit(av(value), ',')) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(token), "trailers")) {
      return true;
    }
  }
  return false;
}

// Which header lines belong to this hop: RFC 9110's list plus the names Connection lists. With
// `keep_upgrade` (an upgrade being forwarded) Upgrade stays and Connection is dropped, for the
// caller to send "Connection: Upgrade" alone. Views into the headers it was built from.
class HopByHopFilter {
 public:
  HopByHopFilter(const HeaderMap& headers, bool keep_upgrade) : keep_upgrade_(keep_upgrade) {
    for (const Header& h : headers.entries()) {
      if (!equalsIgnoreCase(h.name, "Connection")) {
        continue;
      }
      for (absl::string_view token : absl::StrSplit(av(h.value), ',')) {
        token = absl::StripAsciiWhitespace(token);
        if (!token.empty()) {
          named_.emplace_back(token.data(), token.size());
        }
      }
    }
  }

  bool drops(std::string_view name) const {
    if (keep_upgrade_) {
      if (equalsIgnoreCase(name, "Upgrade")) {
        return false;
      }
      if (equalsIgnoreCase(name, "Connection")) {
        return true;
      }
    }
    for (std::string_view hop : kHopByHop) {
      if (equalsIgnoreCase(name, hop)) {
        return true;
      }
    }
    for (std::string_view n : named_) {
      if (equalsIgnoreCase(name, n)) {
        return true;
      }
    }
    return false;
  }

 private:
  bool keep_upgrade_;
  std::vector<std::string_view> named_;
};

}  // namespace

// Both builders below write the kept lines straight out instead of copying the header map and
// editing the copy: one fewer copy of every header string per request in each direction.
std::string serializeUpstreamRequest(const RequestHead& head, std::string_view client_ip) {
  std::string out;
  serializeUpstreamRequest(head, client_ip, "", out);
  return out;
}

void serializeUpstreamRequest(const RequestHead& head, std::string_view client_ip,
                              std::string_view extra_lines, std::string& out) {
  HopByHopFilter hop(head.headers, head.upgrade);
  // X-Forwarded-For: prior values joined, then this client, as Go's ReverseProxy does (after
  // hop-by-hop removal, so a Connection-listed X-Forwarded-For is not carried over).
  std::string xff;
  if (!hop.drops("X-Forwarded-For")) {
    for (const Header& h : head.headers.entries()) {
      if (equalsIgnoreCase(h.name, "X-Forwarded-For")) {
        absl::StrAppend(&xff, xff.empty() ? "" : ", ", av(h.value));
      }
    }
  }
  absl::StrAppend(&xff, xff.empty() ? "" : ", ", av(client_ip));
  out.clear();
  out.reserve(512 + head.target.size());
  out.append(head.method);
  out += ' ';
  out.append(head.target);
  out.append(" HTTP/1.1\r\n");
  bool te_trailers = false;
  bool length_written = false;
  for (const Header& h : head.headers.entries()) {
    if (equalsIgnoreCase(h.name, "Content-Length")) {
      // The length the body is forwarded with, as parsed (Go's Transport writes ContentLength,
      // not the header): a Connection header naming Content-Length must not drop it (the body
      // would become the backend's next request), nor obs-fold whitespace ("2\t") reach it. A
      // chunked body is re-chunked instead.
      if (!head.chunked && head.content_length.has_value() && !length_written) {
        char digits[24];
        char* end = std::to_chars(digits, digits + sizeof(digits), *head.content_length).ptr;
        appendHeader(out, h.name, std::string_view(digits, static_cast<size_t>(end - digits)));
        length_written = true;
      }
      continue;
    }
    if (hop.drops(h.name)) {
      te_trailers = te_trailers || (equalsIgnoreCase(h.name, "Te") && listsTrailersToken(h.value));
      continue;
    }
    if (equalsIgnoreCase(h.name, "Expect") || equalsIgnoreCase(h.name, "X-Forwarded-For")) {
      continue;
    }
    appendHeader(out, h.name, h.value);
  }
  out.append(extra_lines);
  if (te_trailers) {
    // The backend may then send trailers, which are forwarded.
    out += "Te: trailers\r\n";
  }
  if (head.upgrade) {
    out += "Connection: Upgrade\r\n";
  }
  appendHeader(out, "X-Forwarded-For", xff);
  if (head.chunked) {
    out += "Transfer-Encoding: chunked\r\n";
  }
  out += "\r\n";
}

DownstreamResponse buildDownstreamResponse(const ResponseHead& upstream, const RequestHead& request,
                                           bool body_allowed, bool client_keep_alive) {
  DownstreamResponse result;
  buildDownstreamResponse(upstream, request, body_allowed, client_keep_alive, result);
  return result;
}

void buildDownstreamResponse(const ResponseHead& upstream, const RequestHead& request,
                             bool body_allowed, bool client_keep_alive,
                             DownstreamResponse& result) {
  const bool switching = upstream.status == 101;
  const bool http11 = request.http_major == 1 && request.http_minor >= 1;
  bool close = !client_keep_alive;
  if (switching || upstream.status / 100 == 1 || !body_allowed) {
    result.framing = BodyFraming::kNone;  // HEAD, 204, 304: headers (incl. Content-Length) as sent
  } else if (upstream.content_length.has_value()) {
    result.framing = BodyFraming::kContentLength;
  } else if (http11) {
    result.framing = BodyFraming::kChunked;
  } else {
    result.framing = BodyFraming::kUntilClose;
    close = true;
  }
  const bool rechunk = result.framing == BodyFraming::kChunked;
  result.close_after = close && !switching;
  std::string_view reason = upstream.reason.empty() ? httpReasonPhrase(upstream.status)
                                                    : std::string_view(upstream.reason);
  std::string& out = result.head;
  out.clear();
  out.reserve(256);
  absl::StrAppend(&out, "HTTP/1.", http11 ? 1 : 0, " ", upstream.status, " ", av(reason), "\r\n");
  HopByHopFilter hop(upstream.headers, switching);
  bool announces_trailers = false;
  for (const Header& h : upstream.headers.entries()) {
    if (hop.drops(h.name)) {
      announces_trailers = announces_trailers || equalsIgnoreCase(h.name, "Trailer");
      continue;
    }
    if ((rechunk || result.framing == BodyFraming::kContentLength) &&
        equalsIgnoreCase(h.name, "Content-Length")) {
      continue;  // re-chunked, or written below from the parsed length
    }
    appendHeader(out, h.name, h.value);
  }
  if (result.framing == BodyFraming::kContentLength) {
    // The length the body is framed by, whatever the backend's lines: a "Connection:
    // content-length" would otherwise drop it while the body is still copied by length, leaving
    // the client unable to tell where the response ends.
    absl::StrAppend(&out, "Content-Length: ", *upstream.content_length, "\r\n");
  }
  if (switching) {
    out += "Connection: Upgrade\r\n";
  }
  if (announces_trailers && rechunk && upstream.chunked) {
    // As Go's ReverseProxy: the trailers the backend announced, for a client that gets them.
    appendTrailerAnnouncement(forwardableTrailerNames(upstream.headers), out);
  }
  if (rechunk) {
    out += "Transfer-Encoding: chunked\r\n";
  }
  if (!switching && upstream.status / 100 != 1) {
    if (close) {
      out += "Connection: close\r\n";
    } else if (!http11) {
      out += "Connection: keep-alive\r\n";
    }
  }
  out += "\r\n";
}

void appendHttp2ResponseFields(const ResponseHead& upstream,
                               std::vector<std::pair<std::string, std::string>>& fields) {
  HopByHopFilter hop(upstream.headers, false);
  bool announces_trailers = false;
  for (const Header& h : upstream.headers.entries()) {
    if (hop.drops(h.name)) {
      announces_trailers = announces_trailers || equalsIgnoreCase(h.name, "Trailer");
      continue;
    }
    if (upstream.chunked && equalsIgnoreCase(h.name, "Content-Length")) {
      continue;
    }
    fields.emplace_back(absl::AsciiStrToLower(av(h.name)), h.value);
  }
  if (announces_trailers && upstream.chunked) {
    HeaderMap names = forwardableTrailerNames(upstream.headers);
    if (!names.empty()) {
      std::string value;
      for (const Header& n : names.entries()) {
        absl::StrAppend(&value, value.empty() ? "" : ", ", av(n.name));
      }
      fields.emplace_back("trailer", std::move(value));
    }
  }
}

bool isForwardableTrailer(std::string_view name) {
  if (!isTokenName(name) || startsWithIgnoreCase(name, "If-")) {
    return false;  // a pseudo-header field's ':' is not a token character
  }
  for (std::string_view refused : kNotTrailers) {
    if (equalsIgnoreCase(name, refused)) {
      return false;
    }
  }
  return true;
}

HeaderMap forwardableTrailerNames(const HeaderMap& headers) {
  HopByHopFilter hop(headers, false);
  HeaderMap names;
  for (const Header& h : headers.entries()) {
    if (!equalsIgnoreCase(h.name, "Trailer")) {
      continue;
    }
    for (absl::string_view token : absl::StrSplit(av(h.value), ',')) {
      token = absl::StripAsciiWhitespace(token);
      std::string_view name(token.data(), token.size());
      if (isForwardableTrailer(name) && !hop.drops(name)) {
        names.add(std::string(name), "");
      }
    }
  }
  return names;
}

void appendTrailerAnnouncement(const HeaderMap& names, std::string& out) {
  if (names.empty()) {
    return;
  }
  out += "Trailer: ";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) {
      out += ", ";
    }
    out.append(names.entries()[i].name);
  }
  out += "\r\n";
}

void appendLastChunk(const HeaderMap& trailers, const HeaderMap& head, std::string& out) {
  out += "0\r\n";
  if (!trailers.empty()) {
    HopByHopFilter hop(head, false);
    for (const Header& h : trailers.entries()) {
      if (isForwardableTrailer(h.name) && !hop.drops(h.name)) {
        appendHeader(out, h.name, h.value);
      }
    }
  }
  out += "\r\n";
}

void appendHttp2TrailerFields(const HeaderMap& trailers, const HeaderMap& head,
                              std::vector<std::pair<std::string, std::string>>& fields) {
  HopByHopFilter hop(head, false);
  for (const Header& h : trailers.entries()) {
    if (isForwardableTrailer(h.name) && !hop.drops(h.name)) {
      fields.emplace_back(absl::AsciiStrToLower(av(h.name)), h.value);
    }
  }
}

std::string serializeLocalResponse(int status, std::string_view content_type, std::string_view body,
                                   const HeaderMap& extra_headers, bool close, int http_minor) {
  std::string out;
  absl::StrAppend(&out, "HTTP/1.", http_minor >= 1 ? 1 : 0, " ", status, " ",
                  av(httpReasonPhrase(status)), "\r\n");
  if (!content_type.empty()) {
    absl::StrAppend(&out, "Content-Type: ", av(content_type), "\r\n");
  }
  appendHeaders(out, extra_headers);
  absl::StrAppend(&out, "Content-Length: ", body.size(), "\r\n");
  if (close) {
    out += "Connection: close\r\n";
  } else if (http_minor == 0) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  out.append(body);
  return out;
}

}  // namespace aaproxy
