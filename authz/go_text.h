// Go standard-library text semantics that authorization must reproduce byte for byte:
// net/url request-target parsing and query decoding, strconv.Quote (%q), strings.EqualFold.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace aaproxy {

// What Go's url.ParseRequestURI keeps of a request target (origin-form, absolute-form or "*").
// rawPath and rawQuery are views into the target that was parsed: keep it alive.
struct GoRequestUri {
  std::string_view rawPath;   // as received (escaped), without the query
  std::string path;           // URL.Path: percent-decoded, "%2F" becomes '/'
  std::string_view rawQuery;  // after the first '?', undecoded
};

// Parses an HTTP request target the way net/http does before any handler runs. Errors are
// the cases where Go's server answers 400 (bad escape, control character, unusable form).
absl::StatusOr<GoRequestUri> parseGoRequestUri(std::string_view target);

// url.PathUnescape / url.QueryUnescape. Query mode turns '+' into a space.
absl::StatusOr<std::string> goUnescape(std::string_view s, bool queryMode);

// url.URL.EscapedPath() for an origin-form URL: the raw path when it is a valid encoding of
// the decoded path, else the decoded path re-escaped.
std::string goEscapedPath(const GoRequestUri& uri);

// url.ParseQuery: '&'-separated pairs, malformed pairs (bad escape, ';' in the pair) dropped;
// a query of more than 10000 '&'-separated parameters yields nothing (Go's urlmaxqueryparams).
// Keeps every value in order; Go's Values map is reproduced by first()/all().
class GoQuery {
 public:
  static GoQuery parse(std::string_view rawQuery);

  // Values.Get(key): the first value, "" when absent. has() tells absent from empty.
  std::string_view first(std::string_view key) const;
  bool has(std::string_view key) const;
  std::vector<std::string_view> all(std::string_view key) const;

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

// strconv.Quote: what fmt's %q prints for a string.
std::string goQuote(std::string_view s);
void appendGoQuoted(std::string& out, std::string_view s);

// strings.EqualFold (simple Unicode case folding, including U+017F ſ ~ s and U+212A K ~ k).
bool goEqualFold(std::string_view a, std::string_view b);

// strings.ToLower restricted to what matters here: ASCII letters lowered, other bytes kept.
// (Go also lowers non-ASCII letters; callers only compare the result with ASCII words, and no
// non-ASCII rune lowercases into the ASCII letters of "false".)
std::string goAsciiLower(std::string_view s);

// strconv.ParseInt(s, 10, 64) succeeds.
bool goParsesInt64(std::string_view s);

// strconv.ParseBool; nullopt-like: returns {ok, value}.
std::pair<bool, bool> goParseBool(std::string_view s);

// fmt.Errorf(msg) with no arguments: verbs become "%!v(MISSING)", "%%" becomes "%".
std::string goErrorfNoArgs(std::string_view format);

}  // namespace aaproxy
