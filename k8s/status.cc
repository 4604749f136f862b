// Byte-for-byte Status bodies: field order and escaping follow Go's encoding/json.
#include "k8s/status.h"

#include "absl/strings/str_cat.h"

namespace aaproxy {
namespace {

constexpr char kHex[] = "0123456789abcdef";

void appendUnicodeEscape(std::string& out, unsigned code) {
  out += "\\u";
  out += kHex[(code >> 12) & 0xf];
  out += kHex[(code >> 8) & 0xf];
  out += kHex[(code >> 4) & 0xf];
  out += kHex[code & 0xf];
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is invalid.
size_t validUtf8Length(std::string_view s, size_t i) {
  auto cont = [&](size_t k) { return k < s.size() && (static_cast<unsigned char>(s[k]) & 0xc0) == 0x80; };
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    return 1;
  }
  if (c >= 0xc2 && c <= 0xdf) {
    return cont(i + 1) ? 2 : 0;
  }
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(i + 1) || !cont(i + 2)) {
      return 0;
    }
    unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
    if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f)) {
      return 0;  // overlong or surrogate
    }
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) {
      return 0;
    }
    unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
    if ((c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 > 0x8f)) {
      return 0;
    }
    return 4;
  }
  return 0;
}

// Printable ASCII that Go's encoder writes as is (everything but '"', '\\', '<', '>', '&').
bool plainJsonByte(unsigned char c) {
  return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&';
}

}  // namespace

void appendGoJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    // Names, groups and paths are mostly plain: copy runs of them at once (this runs for every
    // SubjectAccessReview cache key).
    size_t run = i;
    while (run < s.size() && plainJsonByte(static_cast<unsigned char>(s[run]))) {
      ++run;
    }
    if (run > i) {
      out.append(s.data() + i, run - i);
      i = run;
      continue;
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '<':
        case '>':
        case '&':
          appendUnicodeEscape(out, c);
          break;
        default:
          if (c < 0x20) {
            appendUnicodeEscape(out, c);
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    size_t n = validUtf8Length(s, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    // U+2028 and U+2029 are E2 80 A8 / E2 80 A9.
    if (n == 3 && c == 0xe2 && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(s[i + 2]) & 0xfe) == 0xa8) {
      appendUnicodeEscape(out, 0x2028 | (static_cast<unsigned char>(s[i + 2]) & 1));
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  out += '"';
}

std::string goJsonIndent(std::string_view compact) {
  std::string out;
  int depth = 0;
  bool inString = false;
  auto newline = [&]() {
    out += '\n';
    out.append(static_cast<size_t>(depth) * 2, ' ');
  };
  for (size_t i = 0; i < compact.size(); ++i) {
    char c = compact[i];
    if (inString) {
      out += c;
      if (c == '\\' && i + 1 < compact.size()) {
        out += compact[++i];
      } else if (c == '"') {
        inString = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        inString = true;
        out += c;
        break;
      case '{':
      case '[':
        out += c;
        // Empty objects and arrays stay compact, as in encoding/json.
        if (i + 1 < compact.size() && (compact[i + 1] == '}' || compact[i + 1] == ']')) {
          out += compact[++i];
        } else {
          ++depth;
          newline();
        }
        break;
      case '}':
      case ']':
        --depth;
        newline();
        out += c;
        break;
      case ',':
        out += c;
        newline();
        break;
      case ':':
        out += ": ";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string failureStatusJson(int code, std::string_view reason, std::string_view message,
                              const std::optional<StatusDetails>& details, JsonStyle style) {
  std::string out = R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure")";
  if (!message.empty()) {
    out += R"(,"message":)";
    appendGoJsonString(out, message);
  }
  if (!reason.empty()) {
    out += R"(,"reason":)";
    appendGoJsonString(out, reason);
  }
  if (details.has_value()) {
    out += R"(,"details":{)";
    bool first = true;
    auto field = [&](std::string_view key, const std::string& value) {
      if (value.empty()) {
        return;
      }
      absl::StrAppend(&out, first ? "" : ",", "\"", absl::string_view(key.data(), key.size()), "\":");
      appendGoJsonString(out, value);
      first = false;
    };
    field("name", details->name);
    field("group", details->group);
    field("kind", details->kind);
    out += '}';
  }
  absl::StrAppend(&out, R"(,"code":)", code, "}");
  if (style == JsonStyle::kPretty) {
    return goJsonIndent(out);
  }
  out += '\n';
  return out;
}

std::string unauthorizedStatusJson(JsonStyle style) {
  return failureStatusJson(401, "Unauthorized", "Unauthorized", std::nullopt, style);
}

std::string_view httpReasonPhrase(int code) {
  switch (code) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Request Entity Too Large";
    case 414: return "Request-URI Too Long";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace aaproxy
