// Parsing of the load generator's flags (see kLoadgenUsage).
#include "bench/loadgen_options.h"

#include <charconv>
#include <optional>

#include "absl/status/status.h"

namespace aaproxy {

const char kLoadgenUsage[] =
    R"(loadgen: closed-loop HTTP/1.1 keep-alive load generator with client certificates.

Usage: loadgen --url URL [flags]

  --url URL            http://host:port/path or https://host:port/path (required)
  --cert FILE          client certificate chain (PEM) to present
  --key FILE           private key of --cert (PEM)
  --cacert FILE        CA bundle (PEM) to verify the server with
  --insecure           do not verify the server certificate
  --connections N      concurrent keep-alive connections (default 64)
  --threads N          event-loop threads; connections are spread over them (default 1)
  --duration D         how long to run, e.g. 10s, 500ms, 1m (default 10s)
  --timeout D          a response must complete within D, else the connection is dropped
                       and counted in errors_timeout (default 10s)
  --header 'K: V'      extra request header; repeatable
  --help               this text

Each connection sends a GET, reads the whole response (Content-Length, chunked or
close-delimited), records the latency, and sends the next. Closed connections reconnect,
resuming the TLS session. At the end one JSON line goes to stdout.
)";

namespace {

absl::StatusOr<int> parsePositiveInt(const std::string& flag, const std::string& value) {
  int out = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  if (ec != std::errc() || end != value.data() + value.size() || out <= 0) {
    return absl::InvalidArgumentError("--" + flag + ": want a positive integer, got \"" + value +
                                      "\"");
  }
  return out;
}

absl::StatusOr<absl::Duration> parsePositiveDuration(const std::string& flag,
                                                     const std::string& value) {
  absl::Duration d;
  if (!absl::ParseDuration(value, &d) || d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--" + flag + ": want a positive duration like 10s, got \"" +
                                      value + "\"");
  }
  return d;
}

bool isToken(const std::string& s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<std::string> parseHeader(const std::string& value) {
  const size_t colon = value.find(':');
  if (colon == std::string::npos || !isToken(value.substr(0, colon))) {
    return absl::InvalidArgumentError("--header: want 'Name: value', got \"" + value + "\"");
  }
  if (value.find_first_of("\r\n") != std::string::npos) {
    return absl::InvalidArgumentError("--header: line breaks are not allowed in \"" + value + "\"");
  }
  std::string rest = value.substr(colon + 1);
  const size_t first = rest.find_first_not_of(" \t");
  rest = first == std::string::npos ? "" : rest.substr(first);
  return value.substr(0, colon) + ": " + rest;
}

}  // namespace

absl::StatusOr<LoadgenUrl> parseLoadgenUrl(const std::string& url) {
  LoadgenUrl out;
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    out.tls = true;
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else {
    return absl::InvalidArgumentError("--url: want http:// or https://, got \"" + url + "\"");
  }
  const size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  out.path_and_query = slash == std::string::npos ? "/" : rest.substr(slash);
  if (authority.empty() || authority.find('@') != std::string::npos) {
    return absl::InvalidArgumentError("--url: want a host (and no user info) in \"" + url + "\"");
  }
  std::string port_text;
  if (authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) {
      return absl::InvalidArgumentError("--url: unterminated IPv6 literal in \"" + url + "\"");
    }
    out.host = authority.substr(1, close - 1);
    const std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        return absl::InvalidArgumentError("--url: bad authority in \"" + url + "\"");
      }
      port_text = after.substr(1);
    }
  } else {
    const size_t colon = authority.find(':');
    out.host = authority.substr(0, colon);
    if (colon != std::string::npos) {
      port_text = authority.substr(colon + 1);
    }
  }
  if (out.host.empty()) {
    return absl::InvalidArgumentError("--url: empty host in \"" + url + "\"");
  }
  if (port_text.empty()) {
    out.port = out.tls ? 443 : 80;
  } else {
    int port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port <= 0 ||
        port > 65535) {
      return absl::InvalidArgumentError("--url: bad port \"" + port_text + "\"");
    }
    out.port = static_cast<uint16_t>(port);
  }
  out.host_header = authority;
  return out;
}

absl::StatusOr<LoadgenOptions> parseLoadgenOptions(const std::vector<std::string>& args) {
  LoadgenOptions options;
  std::optional<std::string> url;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError("unexpected argument \"" + arg + "\" (see --help)");
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name == "help" || name == "insecure") {
      if (inline_value.has_value() && *inline_value != "true") {
        return absl::InvalidArgumentError("--" + name + " takes no value");
      }
      (name == "help" ? options.help : options.insecure) = true;
      continue;
    }
    static const char* const kValued[] = {"url",     "cert",     "key",     "cacert", "connections",
                                          "threads", "duration", "timeout", "header"};
    bool known = false;
    for (const char* k : kValued) {
      known = known || name == k;
    }
    if (!known) {
      return absl::InvalidArgumentError("unknown flag --" + name + " (see --help)");
    }
    std::string value;
    if (inline_value.has_value()) {
      value = *inline_value;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError("--" + name + " needs a value");
    }
    if (name == "url") {
      url = value;
    } else if (name == "cert") {
      options.cert_file = value;
    } else if (name == "key") {
      options.key_file = value;
    } else if (name == "cacert") {
      options.cacert_file = value;
    } else if (name == "connections") {
      absl::StatusOr<int> n = parsePositiveInt(name, value);
      if (!n.ok()) {
        return n.status();
      }
      options.connections = *n;
    } else if (name == "threads") {
      absl::StatusOr<int> n = parsePositiveInt(name, value);
      if (!n.ok()) {
        return n.status();
      }
      options.threads = *n;
    } else if (name == "duration") {
      absl::StatusOr<absl::Duration> d = parsePositiveDuration(name, value);
      if (!d.ok()) {
        return d.status();
      }
      options.duration = *d;
    } else if (name == "timeout") {
      absl::StatusOr<absl::Duration> d = parsePositiveDuration(name, value);
      if (!d.ok()) {
        return d.status();
      }
      options.timeout = *d;
    } else if (name == "header") {
      absl::StatusOr<std::string> h = parseHeader(value);
      if (!h.ok()) {
        return h.status();
      }
      options.headers.push_back(*std::move(h));
    }
  }
  if (options.help) {
    return options;
  }
  if (!url.has_value()) {
    return absl::InvalidArgumentError("--url is required (see --help)");
  }
  absl::StatusOr<LoadgenUrl> parsed = parseLoadgenUrl(*url);
  if (!parsed.ok()) {
    return parsed.status();
  }
  options.url = *std::move(parsed);
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError("--cert and --key go together");
  }
  if (!options.url.tls &&
      (!options.cert_file.empty() || !options.cacert_file.empty() || options.insecure)) {
    return absl::InvalidArgumentError("--cert/--key/--cacert/--insecure need an https:// --url");
  }
  if (options.url.tls && options.cacert_file.empty() && !options.insecure) {
    return absl::InvalidArgumentError("https:// needs --cacert FILE or --insecure");
  }
  if (options.threads > options.connections) {
    options.threads = options.connections;
  }
  return options;
}

}  // namespace aaproxy
