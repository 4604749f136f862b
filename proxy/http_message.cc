// Header rewriting for forwarding; Go's httputil.ReverseProxy is the behavioural reference.
#include "proxy/http_message.h"

#include <algorithm>
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
    "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
    "Te",         "Trailer",          "Transfer-Encoding", "Upgrade",
};

void appendHeaders(std::string& out, const HeaderMap& headers) {
  for (const Header& h : headers.entries()) {
    absl::StrAppend(&out, h.name, ": ", h.value, "\r\n");
  }
}

}  // namespace

void removeHopByHopHeaders(HeaderMap& headers, bool keep_upgrade) {
  std::vector<std::string> named;
  for (std::string_view value : headers.getAll("Connection")) {
    for (absl::string_view token : absl::StrSplit(av(value), ',')) {
      token = absl::StripAsciiWhitespace(token);
      if (!token.empty()) {
        named.emplace_back(token);
      }
    }
  }
  headers.removeIf([&](const Header& h) {
    if (keep_upgrade && (absl::EqualsIgnoreCase(h.name, "Upgrade") ||
                         absl::EqualsIgnoreCase(h.name, "Connection"))) {
      return false;
    }
    for (std::string_view hop : kHopByHop) {
      if (absl::EqualsIgnoreCase(h.name, av(hop))) {
        return true;
      }
    }
    for (const std::string& n : named) {
      if (absl::EqualsIgnoreCase(h.name, n)) {
        return !(keep_upgrade && absl::EqualsIgnoreCase(n, "Upgrade"));
      }
    }
    return false;
  });
  if (keep_upgrade) {
    // Only "Connection: Upgrade" itself survives; other connection options are this hop's.
    headers.remove("Connection");
    headers.add("Connection", "Upgrade");
  }
}

std::string serializeUpstreamRequest(const RequestHead& head, std::string_view client_ip) {
  HeaderMap headers = head.headers;
  removeHopByHopHeaders(headers, head.upgrade);
  headers.remove("Expect");
  // X-Forwarded-For: prior values joined, then this client, as Go's ReverseProxy does.
  std::vector<std::string_view> prior = headers.getAll("X-Forwarded-For");
  std::string xff;
  for (std::string_view p : prior) {
    absl::StrAppend(&xff, xff.empty() ? "" : ", ", av(p));
  }
  absl::StrAppend(&xff, xff.empty() ? "" : ", ", av(client_ip));
  headers.remove("X-Forwarded-For");
  headers.add("X-Forwarded-For", std::move(xff));
  if (head.chunked) {
    headers.remove("Content-Length");
    headers.add("Transfer-Encoding", "chunked");
  }
  std::string out;
  out.reserve(256 + head.target.size());
  absl::StrAppend(&out, head.method, " ", head.target, " HTTP/1.1\r\n");
  appendHeaders(out, headers);
  out += "\r\n";
  return out;
}

DownstreamResponse buildDownstreamResponse(const ResponseHead& upstream, const RequestHead& request,
                                           bool body_allowed, bool client_keep_alive) {
  DownstreamResponse result;
  const bool switching = upstream.status == 101;
  HeaderMap headers = upstream.headers;
  removeHopByHopHeaders(headers, switching);
  const bool http11 = request.http_major == 1 && request.http_minor >= 1;
  bool close = !client_keep_alive;
  if (switching || upstream.status / 100 == 1) {
    result.framing = BodyFraming::kNone;
  } else if (!body_allowed) {
    result.framing = BodyFraming::kNone;  // HEAD, 204, 304: headers (incl. Content-Length) as sent
  } else if (upstream.content_length.has_value()) {
    result.framing = BodyFraming::kContentLength;
  } else if (http11) {
    result.framing = BodyFraming::kChunked;
    headers.remove("Content-Length");
    headers.add("Transfer-Encoding", "chunked");
  } else {
    result.framing = BodyFraming::kUntilClose;
    close = true;
  }
  if (!switching && upstream.status / 100 != 1) {
    if (close) {
      headers.add("Connection", "close");
    } else if (!http11) {
      headers.add("Connection", "keep-alive");
    }
  }
  result.close_after = close && !switching;
  std::string reason = upstream.reason.empty() ? std::string(httpReasonPhrase(upstream.status))
                                               : upstream.reason;
  absl::StrAppend(&result.head, "HTTP/1.", http11 ? 1 : 0, " ", upstream.status, " ", reason, "\r\n");
  appendHeaders(result.head, headers);
  result.head += "\r\n";
  return result;
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
