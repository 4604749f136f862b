#include "authn/identity_headers.h"

#include "authn/request_header_authenticator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace aaproxy {
namespace {

// What the proxy does before forwarding (ClientConnection::startForwarding), with the written
// lines read back into `headers` so that tests can look at them as header lines.
absl::Status setIdentityHeaders(HeaderMap& headers, const UserInfo& user) {
  removeIdentityHeaders(headers);
  std::string lines;
  absl::Status status = appendIdentityHeaderLines(lines, user);
  std::string_view rest = lines;
  while (!rest.empty()) {
    size_t end = rest.find("\r\n");
    std::string_view line = rest.substr(0, end);
    size_t colon = line.find(": ");
    headers.add(std::string(line.substr(0, colon)), std::string(line.substr(colon + 2)));
    rest.remove_prefix(end + 2);
  }
  return status;
}

std::vector<std::string> names(const HeaderMap& headers) {
  std::vector<std::string> out;
  for (const Header& h : headers.entries()) {
    out.push_back(h.name);
  }
  return out;
}

TEST(StripIdentityHeadersTest, RemovesStandardConfiguredAndImpersonationHeaders) {
  HeaderMap headers;
  headers.add("Host", "example");
  headers.add("authorization", "Bearer t");
  headers.add("AUTHORIZATION", "Basic x");
  headers.add("x-remote-user", "mallory");
  headers.add("X-Remote-User", "mallory2");
  headers.add("X-Remote-Uid", "u");
  headers.add("X-REMOTE-GROUP", "system:masters");
  headers.add("X-Remote-Extra-Scopes", "s");
  headers.add("x-remote-extra-", "empty key");
  headers.add("X-Custom-User", "mallory");
  headers.add("X-Custom-Uid", "u");
  headers.add("x-custom-group", "g");
  headers.add("X-Custom-Extra-Foo", "f");
  headers.add("Impersonate-User", "admin");
  headers.add("impersonate-group", "system:masters");
  headers.add("Impersonate-Uid", "1");
  headers.add("Impersonate-Extra-Scopes", "x");
  headers.add("Accept", "application/json");
  headers.add("X-Remote-Username-Not-Really", "kept: not a configured name");
  IdentityHeaderNames configured{
      {"X-Custom-User"}, {"X-Custom-Uid"}, {"X-Custom-Group"}, {"X-Custom-Extra-"}};
  EXPECT_EQ(stripIdentityHeaders(headers, configured), 16u);
  EXPECT_EQ(names(headers),
            (std::vector<std::string>{"Host", "Accept", "X-Remote-Username-Not-Really"}));
}

TEST(EscapeExtraHeaderKeyTest, MatchesClientGo) {
  EXPECT_EQ(escapeExtraHeaderKey("scopes"), "scopes");
  EXPECT_EQ(escapeExtraHeaderKey("authentication.kubernetes.io/credential-id"),
            "authentication.kubernetes.io%2Fcredential-id");
  EXPECT_EQ(escapeExtraHeaderKey("100%"), "100%25");
  EXPECT_EQ(escapeExtraHeaderKey("a b:c\"d"), "a%20b%3Ac%22d");
  EXPECT_EQ(escapeExtraHeaderKey("abc123!#$+.-_*\\^`~|'&"), "abc123!#$+.-_*%5C^`~|'&");
  EXPECT_EQ(escapeExtraHeaderKey("example.com/\xE4\xBB\x8A"), "example.com%2F%E4%BB%8A");
  EXPECT_EQ(escapeExtraHeaderKey(std::string("\x00\x7f", 2)), "%00%7F");
}

TEST(SetIdentityHeadersTest, WritesAggregatorStyleHeaders) {
  HeaderMap headers;
  headers.add("X-Remote-User", "stale");
  headers.add("X-Remote-Extra-Old", "stale");
  UserInfo user{"alice", "", {"dev", "system:authenticated"}, {{"a/b", {"1", "2"}}}};
  ASSERT_TRUE(setIdentityHeaders(headers, user).ok());
  std::vector<std::pair<std::string, std::string>> lines;
  for (const Header& h : headers.entries()) {
    lines.emplace_back(h.name, h.value);
  }
  EXPECT_EQ(lines, (std::vector<std::pair<std::string, std::string>>{
                       {"X-Remote-User", "alice"},
                       {"X-Remote-Group", "dev"},
                       {"X-Remote-Group", "system:authenticated"},
                       {"X-Remote-Extra-a%2Fb", "1"},
                       {"X-Remote-Extra-a%2Fb", "2"}}));
  user.uid = "uid-1";
  ASSERT_TRUE(setIdentityHeaders(headers, user).ok());
  EXPECT_EQ(headers.getAll("X-Remote-Uid"), std::vector<std::string_view>{"uid-1"});
  EXPECT_EQ(headers.getAll("X-Remote-User"), std::vector<std::string_view>{"alice"});
}

TEST(SetIdentityHeadersTest, RoundTripsThroughTheRequestHeaderAuthenticator) {
  auto auth = RequestHeaderAuthenticator::create(
      {nullptr, {}, {"X-Remote-User"}, {"X-Remote-Uid"}, {"X-Remote-Group"}, {"X-Remote-Extra-"}});
  ASSERT_TRUE(auth.ok());
  std::vector<UserInfo> users = {
      {"alice", "", {}, {}},
      {"system:serviceaccount:ns:sa",
       "0f6b9c1e-uid",
       {"system:serviceaccounts", "system:serviceaccounts:ns", "a,b", "with space"},
       {{"authentication.kubernetes.io/credential-id", {"JTI=abc"}},
        {"authentication.kubernetes.io/pod-name", {"pod-1"}},
        {"scopes", {"view", "", "edit"}},
        {"100%sure", {"yes"}},
        {"", {"empty key"}},
        {"example.com/\xE4\xBB\x8A\xE6\x97\xA5", {"unicode"}},
        {"key with spaces & \"quotes\"", {"v"}}}},
  };
  for (const UserInfo& user : users) {
    SCOPED_TRACE(user.name);
    HeaderMap headers;
    ASSERT_TRUE(setIdentityHeaders(headers, user).ok());
    std::optional<UserInfo> back = (*auth)->userFromHeaders(headers);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, user);
  }
}

TEST(SetIdentityHeadersTest, UppercaseExtraKeysComeBackLowercasedAsUpstream) {
  auto auth = RequestHeaderAuthenticator::create(
      {nullptr, {}, {"X-Remote-User"}, {}, {}, {"X-Remote-Extra-"}});
  HeaderMap headers;
  ASSERT_TRUE(setIdentityHeaders(headers, {"bob", "", {}, {{"Scopes", {"x"}}}}).ok());
  EXPECT_EQ((*auth)->userFromHeaders(headers)->extra,
            (std::map<std::string, std::vector<std::string>>{{"scopes", {"x"}}}));
}

// net/http refuses to send a header value with a control byte other than tab; so does the proxy,
// or a CN like "eve\r\nX-Remote-Group: system:masters" would add a header line of its own.
TEST(SetIdentityHeadersTest, RefusesValuesHttpCannotCarry) {
  struct Case {
    UserInfo user;
    std::string header;
  };
  std::vector<Case> cases = {
      {{"eve\r\nX-Remote-Group: system:masters", "", {}, {}}, "X-Remote-User"},
      {{"eve", "u\n1", {}, {}}, "X-Remote-Uid"},
      {{"eve", "", {"ok", std::string("nul\0", 4)}, {}}, "X-Remote-Group"},
      {{"eve", "", {}, {{"a/b", {"fine", "del\x7f"}}}}, "X-Remote-Extra-a%2Fb"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.header);
    HeaderMap headers;
    headers.add("Accept", "*/*");
    headers.add("X-Remote-User", "client-sent");
    absl::Status status = setIdentityHeaders(headers, c.user);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message(), "invalid header field value for \"" + c.header + "\"");
    // Nothing half-written, and what the client sent is gone all the same.
    ASSERT_EQ(headers.size(), 1u);
    EXPECT_EQ(headers.entries()[0].name, "Accept");
  }
  // Every position of a long value is checked (the check reads eight bytes at a time), and
  // every byte value is judged as net/http does.
  for (size_t pos = 0; pos < 20; ++pos) {
    for (int b = 0; b < 256; ++b) {
      std::string value(20, 'v');
      value[pos] = static_cast<char>(b);
      const bool valid = b == '\t' || (b >= 0x20 && b != 0x7f);
      HeaderMap h;
      EXPECT_EQ(setIdentityHeaders(h, {value, "", {}, {}}).ok(), valid)
          << "byte " << b << " at " << pos;
    }
  }
  // Tabs, spaces and bytes above 0x7f are fine, as in Go.
  HeaderMap headers;
  EXPECT_TRUE(setIdentityHeaders(headers, {"a\tb c\xc3\xa9", "", {"\xff"}, {}}).ok());
  EXPECT_EQ(headers.getAll("X-Remote-User"), std::vector<std::string_view>{"a\tb c\xc3\xa9"});
}

// The exact bytes written into the upstream request head.
TEST(SetIdentityHeadersTest, LinesAreWrittenAsTheyGoOut) {
  UserInfo user{"system:serviceaccount:ns:sa", "uid-7", {"a", "b"},
                {{"authentication.kubernetes.io/credential-id", {"JTI=1"}}, {"s", {"x", "y"}}}};
  std::string lines = "prefix\r\n";
  ASSERT_TRUE(appendIdentityHeaderLines(lines, user).ok());
  EXPECT_EQ(lines,
            "prefix\r\nX-Remote-User: system:serviceaccount:ns:sa\r\nX-Remote-Uid: uid-7\r\n"
            "X-Remote-Group: a\r\nX-Remote-Group: b\r\n"
            "X-Remote-Extra-authentication.kubernetes.io%2Fcredential-id: JTI=1\r\n"
            "X-Remote-Extra-s: x\r\nX-Remote-Extra-s: y\r\n");
  // A refused identity appends nothing.
  std::string refused = "prefix\r\n";
  EXPECT_EQ(appendIdentityHeaderLines(refused, {"ok", "", {"bad\n"}, {}}).message(),
            "invalid header field value for \"X-Remote-Group\"");
  EXPECT_EQ(refused, "prefix\r\n");
}

TEST(StripWebSocketBearerProtocols, RemovesOnlyTokenProtocols) {
  HeaderMap headers;
  headers.add("Host", "h");
  headers.add("Sec-WebSocket-Protocol",
              "base64url.bearer.authorization.k8s.io.YWxpY2U, v4.channel.k8s.io");
  headers.add("sec-websocket-protocol", "base64url.bearer.authorization.k8s.io.Ym9i");
  EXPECT_EQ(stripWebSocketBearerProtocols(headers), 2u);
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers.getAll("Sec-WebSocket-Protocol"),
            (std::vector<std::string_view>{"v4.channel.k8s.io"}));
}

TEST(StripWebSocketBearerProtocols, LeavesOtherProtocolsAlone) {
  HeaderMap headers;
  headers.add("Sec-WebSocket-Protocol", "v5.channel.k8s.io,  v4.channel.k8s.io");
  EXPECT_EQ(stripWebSocketBearerProtocols(headers), 0u);
  EXPECT_EQ(headers.get("Sec-WebSocket-Protocol"), "v5.channel.k8s.io,  v4.channel.k8s.io");
}

}  // namespace
}  // namespace aaproxy
