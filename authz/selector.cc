// Ports apimachinery's selector grammars; the structure mirrors upstream so that edge cases
// (NUL bytes ending the lexer, "(,)" value sets, sorted field terms) come out the same.
#include "authz/selector.h"

#include <algorithm>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "authz/go_text.h"

namespace aaproxy {
namespace {

// ---- fields ------------------------------------------------------------------------------

std::vector<std::string_view> splitFieldTerms(std::string_view s) {
  std::vector<std::string_view> terms;
  if (s.empty()) {
    return terms;
  }
  size_t start = 0;
  bool inSlash = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (inSlash) {
      inSlash = false;
    } else if (c == '\\') {
      inSlash = true;
    } else if (c == ',') {
      terms.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  terms.push_back(s.substr(start));
  return terms;
}

absl::StatusOr<std::string> unescapeFieldValue(std::string_view s) {
  if (s.find_first_of("\\,=") == std::string_view::npos) {
    return std::string(s);
  }
  std::string out;
  bool inSlash = false;
  // Go ranges over runes here, so invalid UTF-8 bytes come out as U+FFFD.
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t width = 1;
    std::string rune(1, static_cast<char>(c));
    if (c >= 0x80) {
      // Re-validate one rune using the quoting helper's decoder semantics.
      std::string_view rest = s.substr(i);
      size_t n = 0;
      if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
      } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
      } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
      }
      bool ok = n > 0 && rest.size() >= n;
      for (size_t k = 1; ok && k < n; ++k) {
        ok = (static_cast<unsigned char>(rest[k]) & 0xc0) == 0x80;
      }
      if (ok && n >= 3) {
        unsigned char c1 = static_cast<unsigned char>(rest[1]);
        if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) ||
            (c == 0xf4 && c1 > 0x8f)) {
          ok = false;
        }
      }
      if (ok) {
        width = n;
        rune = std::string(rest.substr(0, n));
      } else {
        rune = "\xef\xbf\xbd";
      }
    }
    i += width;
    if (inSlash) {
      if (c == '\\' || c == ',' || c == '=') {
        out += static_cast<char>(c);
      } else {
        return absl::InvalidArgumentError(absl::StrCat("invalid field selector: invalid escape sequence: \\", rune));
      }
      inSlash = false;
      continue;
    }
    if (c == '\\') {
      inSlash = true;
    } else if (c == ',' || c == '=') {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid field selector: unescaped ", std::string(1, static_cast<char>(c)), " in value"));
    } else {
      out += rune;
    }
  }
  if (inSlash) {
    return absl::InvalidArgumentError("invalid field selector: invalid escape sequence: \\");
  }
  return out;
}

// ---- labels ------------------------------------------------------------------------------

enum class Tok {
  kError = 0,
  kEnd,
  kClosedPar,
  kComma,
  kDoesNotExist,
  kDoubleEquals,
  kEquals,
  kGreaterThan,
  kIdentifier,
  kIn,
  kLessThan,
  kNotEquals,
  kNotIn,
  kOpenPar,
};

bool literalToken(std::string_view s, Tok* tok) {
  static const std::pair<std::string_view, Tok> kTable[] = {
      {")", Tok::kClosedPar},   {",", Tok::kComma},      {"!", Tok::kDoesNotExist},
      {"==", Tok::kDoubleEquals}, {"=", Tok::kEquals},   {">", Tok::kGreaterThan},
      {"in", Tok::kIn},         {"<", Tok::kLessThan},   {"!=", Tok::kNotEquals},
      {"notin", Tok::kNotIn},   {"(", Tok::kOpenPar},
  };
  for (const auto& [text, t] : kTable) {
    if (text == s) {
      *tok = t;
      return true;
    }
  }
  return false;
}

bool isWhitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool isSpecialSymbol(char c) {
  return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

struct Item {
  Tok tok;
  std::string lit;
};

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  Item lex() {
    char ch = skipWhitespace(read());
    if (ch == 0) {
      return {Tok::kEnd, ""};
    }
    unread();
    return isSpecialSymbol(ch) ? scanSpecial() : scanIdOrKeyword();
  }

 private:
  // A NUL byte reads like the end of input, as upstream's read() returns 0 for both.
  char read() {
    char b = 0;
    if (pos_ < s_.size()) {
      b = s_[pos_];
      ++pos_;
    }
    return b;
  }
  void unread() { --pos_; }
  char skipWhitespace(char ch) {
    while (isWhitespace(ch)) {
      ch = read();
    }
    return ch;
  }
  Item scanIdOrKeyword() {
    std::string buf;
    for (;;) {
      char ch = read();
      if (ch == 0) {
        break;
      }
      if (isSpecialSymbol(ch) || isWhitespace(ch)) {
        unread();
        break;
      }
      buf += ch;
    }
    Tok t;
    if (literalToken(buf, &t)) {
      return {t, buf};
    }
    return {Tok::kIdentifier, buf};
  }
  Item scanSpecial() {
    Item last{Tok::kError, ""};
    std::string buf;
    for (;;) {
      char ch = read();
      if (ch == 0) {
        break;
      }
      if (!isSpecialSymbol(ch)) {
        unread();
        break;
      }
      buf += ch;
      Tok t;
      if (literalToken(buf, &t)) {
        last = {t, buf};
      } else if (last.tok != Tok::kError) {
        unread();
        break;
      }
    }
    if (last.tok == Tok::kError) {
      return {Tok::kError, absl::StrCat("error expected: keyword found '", buf, "'")};
    }
    return last;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool matchesQualifiedNamePart(std::string_view s) {
  if (s.empty() || !isAlnum(s.front()) || !isAlnum(s.back())) {
    return false;
  }
  for (char c : s) {
    if (!isAlnum(c) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

bool isDns1123Subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) {
    return false;
  }
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (label.empty()) {
      return false;
    }
    auto lowerAlnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!lowerAlnum(label.front()) || !lowerAlnum(label.back())) {
      return false;
    }
    for (char c : label) {
      if (!lowerAlnum(c) && c != '-') {
        return false;
      }
    }
    if (dot == std::string_view::npos) {
      return true;
    }
    start = dot + 1;
  }
}

absl::Status validateLabelKey(std::string_view key) {
  size_t slash = key.find('/');
  std::string_view name = key;
  if (slash != std::string_view::npos) {
    if (key.find('/', slash + 1) != std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("invalid label key ", goQuote(key)));
    }
    std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (!isDns1123Subdomain(prefix)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid label key ", goQuote(key)));
    }
  }
  if (name.empty() || name.size() > 63 || !matchesQualifiedNamePart(name)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid label key ", goQuote(key)));
  }
  return absl::OkStatus();
}

absl::Status validateLabelValue(std::string_view key, std::string_view value) {
  if (value.empty()) {
    return absl::OkStatus();
  }
  if (value.size() > 63 || !matchesQualifiedNamePart(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid label value: ", goQuote(value), ": at key: ", goQuote(key)));
  }
  return absl::OkStatus();
}

class LabelParser {
 public:
  explicit LabelParser(std::string_view s) {
    Lexer lexer(s);
    for (;;) {
      Item item = lexer.lex();
      bool end = item.tok == Tok::kEnd;
      items_.push_back(std::move(item));
      if (end) {
        break;
      }
    }
  }

  absl::StatusOr<std::vector<ParsedRequirement>> parse() {
    std::vector<ParsedRequirement> reqs;
    for (;;) {
      auto [tok, lit] = lookahead(true);
      if (tok == Tok::kIdentifier || tok == Tok::kDoesNotExist) {
        auto r = parseRequirement();
        if (!r.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("unable to parse requirement: ", r.status().message()));
        }
        reqs.push_back(*std::move(r));
        auto [t, l] = consume(true);
        if (t == Tok::kEnd) {
          return reqs;
        }
        if (t == Tok::kComma) {
          auto [t2, l2] = lookahead(true);
          if (t2 != Tok::kIdentifier && t2 != Tok::kDoesNotExist) {
            return absl::InvalidArgumentError(
                absl::StrCat("found '", l2, "', expected: identifier after ','"));
          }
          continue;
        }
        return absl::InvalidArgumentError(
            absl::StrCat("found '", l, "', expected: ',' or 'end of string'"));
      }
      if (tok == Tok::kEnd) {
        return reqs;
      }
      return absl::InvalidArgumentError(
          absl::StrCat("found '", lit, "', expected: !, identifier, or 'end of string'"));
    }
  }

 private:
  // In the Values context the keywords "in"/"notin" are plain identifiers.
  std::pair<Tok, std::string> lookahead(bool values) const {
    const Item& it = items_[pos_];
    Tok t = it.tok;
    if (values && (t == Tok::kIn || t == Tok::kNotIn)) {
      t = Tok::kIdentifier;
    }
    return {t, it.lit};
  }
  std::pair<Tok, std::string> consume(bool values) {
    auto r = lookahead(values);
    ++pos_;
    return r;
  }

  absl::StatusOr<ParsedRequirement> parseRequirement() {
    ParsedRequirement r;
    std::string op;
    auto [tok, lit] = consume(true);
    if (tok == Tok::kDoesNotExist) {
      op = "!";
      std::tie(tok, lit) = consume(true);
    }
    if (tok != Tok::kIdentifier) {
      return absl::InvalidArgumentError(absl::StrCat("found '", lit, "', expected: identifier"));
    }
    if (auto st = validateLabelKey(lit); !st.ok()) {
      return st;
    }
    r.key = lit;
    auto [next, unused] = lookahead(true);
    if (next == Tok::kEnd || next == Tok::kComma) {
      if (op != "!") {
        op = "exists";
      }
    }
    if (op == "exists" || op == "!") {
      r.op = op;
      return r;
    }
    auto [optok, oplit] = consume(false);
    switch (optok) {
      case Tok::kIn: op = "in"; break;
      case Tok::kEquals: op = "="; break;
      case Tok::kDoubleEquals: op = "=="; break;
      case Tok::kGreaterThan: op = "gt"; break;
      case Tok::kLessThan: op = "lt"; break;
      case Tok::kNotIn: op = "notin"; break;
      case Tok::kNotEquals: op = "!="; break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("found '", oplit, "', expected: in, notin, =, ==, !=, gt, lt"));
    }
    r.op = op;
    std::set<std::string> values;
    if (op == "in" || op == "notin") {
      auto [t, l] = consume(true);
      if (t != Tok::kOpenPar) {
        return absl::InvalidArgumentError(absl::StrCat("found '", l, "' expected: '('"));
      }
      auto [t2, l2] = lookahead(true);
      if (t2 == Tok::kIdentifier || t2 == Tok::kComma) {
        if (auto st = parseIdentifiersList(values); !st.ok()) {
          return st;
        }
        auto [t3, l3] = consume(true);
        if (t3 != Tok::kClosedPar) {
          return absl::InvalidArgumentError(absl::StrCat("found '", l2, "', expected: ')'"));
        }
      } else if (t2 == Tok::kClosedPar) {
        consume(true);
        values.insert("");
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("found '", l2, "', expected: ',', ')' or identifier"));
      }
    } else {
      auto [t, l] = lookahead(true);
      if (t == Tok::kEnd || t == Tok::kComma) {
        values.insert("");
      } else {
        auto [t2, l2] = consume(true);
        if (t2 != Tok::kIdentifier) {
          return absl::InvalidArgumentError(absl::StrCat("found '", l2, "', expected: identifier"));
        }
        values.insert(l2);
      }
    }
    r.values.assign(values.begin(), values.end());
    // NewRequirement's validation.
    if ((op == "in" || op == "notin") && r.values.empty()) {
      return absl::InvalidArgumentError("for 'in', 'notin' operators, values set can't be empty");
    }
    if ((op == "=" || op == "==" || op == "!=") && r.values.size() != 1) {
      return absl::InvalidArgumentError("exact-match compatibility requires one single value");
    }
    if (op == "gt" || op == "lt") {
      if (r.values.size() != 1) {
        return absl::InvalidArgumentError("for 'Gt', 'Lt' operators, exactly one value is required");
      }
      for (const auto& v : r.values) {
        if (!goParsesInt64(v)) {
          return absl::InvalidArgumentError(
              "for 'Gt', 'Lt' operators, the value must be an integer");
        }
      }
    }
    for (const auto& v : r.values) {
      if (auto st = validateLabelValue(r.key, v); !st.ok()) {
        return st;
      }
    }
    return r;
  }

  absl::Status parseIdentifiersList(std::set<std::string>& s) {
    for (;;) {
      auto [tok, lit] = consume(true);
      if (tok == Tok::kIdentifier) {
        s.insert(lit);
        auto [t2, l2] = lookahead(true);
        if (t2 == Tok::kComma) {
          continue;
        }
        if (t2 == Tok::kClosedPar) {
          return absl::OkStatus();
        }
        return absl::InvalidArgumentError(absl::StrCat("found '", l2, "', expected: ',' or ')'"));
      }
      if (tok == Tok::kComma) {
        if (s.empty()) {
          s.insert("");
        }
        auto [t2, l2] = lookahead(true);
        if (t2 == Tok::kClosedPar) {
          s.insert("");
          return absl::OkStatus();
        }
        if (t2 == Tok::kComma) {
          s.insert("");  // the next comma is consumed by the next iteration
        }
        continue;
      }
      return absl::InvalidArgumentError(
          absl::StrCat("found '", lit, "', expected: ',', or identifier"));
    }
  }

  std::vector<Item> items_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<std::vector<ParsedRequirement>> parseFieldSelector(std::string_view selector) {
  std::vector<std::string_view> terms = splitFieldTerms(selector);
  std::sort(terms.begin(), terms.end());
  std::vector<ParsedRequirement> reqs;
  for (std::string_view term : terms) {
    if (term.empty()) {
      continue;
    }
    size_t i = 0;
    std::string_view op;
    for (; i < term.size(); ++i) {
      std::string_view rest = term.substr(i);
      if (rest.substr(0, 2) == "!=") {
        op = "!=";
      } else if (rest.substr(0, 2) == "==") {
        op = "==";
      } else if (rest.substr(0, 1) == "=") {
        op = "=";
      }
      if (!op.empty()) {
        break;
      }
    }
    if (op.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("invalid selector: '", std::string(selector),
                                                     "'; can't understand '", std::string(term), "'"));
    }
    std::string_view lhs = term.substr(0, i);
    auto value = unescapeFieldValue(term.substr(i + op.size()));
    if (!value.ok()) {
      return value.status();
    }
    if (lhs.empty() && value->empty()) {
      continue;  // Transform() turns it into Everything()
    }
    reqs.push_back(ParsedRequirement{std::string(lhs), op == "!=" ? "!=" : "=", {*value}});
  }
  return reqs;
}

bool fieldSelectorRequiresExactMatch(const std::vector<ParsedRequirement>& requirements,
                                     std::string_view field, std::string* value) {
  for (const auto& r : requirements) {
    if (r.op == "=" && r.key == field) {
      *value = r.values.empty() ? "" : r.values[0];
      return true;
    }
  }
  return false;
}

absl::StatusOr<std::vector<ParsedRequirement>> parseLabelSelector(std::string_view selector) {
  LabelParser parser(selector);
  auto reqs = parser.parse();
  if (!reqs.ok()) {
    return reqs.status();
  }
  std::stable_sort(reqs->begin(), reqs->end(),
                   [](const ParsedRequirement& a, const ParsedRequirement& b) { return a.key < b.key; });
  return reqs;
}

}  // namespace aaproxy
