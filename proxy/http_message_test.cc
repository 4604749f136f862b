#include "proxy/http_message.h"

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

RequestHead get(std::string target) {
  RequestHead head;
  head.method = "GET";
  head.target = std::move(target);
  head.headers.add("Host", "example");
  return head;
}

TEST(UpstreamRequest, RemovesHopByHopAndHeadersNamedByConnection) {
  RequestHead head = get("/apis/x?watch=1");
  head.headers.add("Connection", "keep-alive, X-Secret");
  head.headers.add("Keep-Alive", "timeout=5");
  head.headers.add("X-Secret", "s");
  head.headers.add("TE", "trailers");
  head.headers.add("Proxy-Authorization", "Basic x");
  head.headers.add("Accept", "application/json");
  EXPECT_EQ(serializeUpstreamRequest(head, "10.0.0.1"),
            "GET /apis/x?watch=1 HTTP/1.1\r\nHost: example\r\nAccept: application/json\r\n"
            "X-Forwarded-For: 10.0.0.1\r\n\r\n");
}

TEST(UpstreamRequest, ExtraLinesFollowTheClientsAndTheBufferIsReplaced) {
  RequestHead head = get("/apis/x");
  head.headers.add("Accept", "application/json");
  std::string out = "left over from the previous request";
  serializeUpstreamRequest(head, "10.0.0.1", "X-Remote-User: alice\r\n", out);
  EXPECT_EQ(out,
            "GET /apis/x HTTP/1.1\r\nHost: example\r\nAccept: application/json\r\n"
            "X-Remote-User: alice\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n");
}

TEST(UpstreamRequest, AppendsToExistingForwardedFor) {
  RequestHead head = get("/");
  head.headers.add("X-Forwarded-For", "1.1.1.1");
  head.headers.add("x-forwarded-for", "2.2.2.2, 3.3.3.3");
  EXPECT_EQ(serializeUpstreamRequest(head, "127.0.0.1"),
            "GET / HTTP/1.1\r\nHost: example\r\n"
            "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1\r\n\r\n");
}

TEST(UpstreamRequest, ForwardedForNamedByConnectionIsNotCarriedOver) {
  // Go's ReverseProxy strips Connection-listed headers before it reads the prior value.
  RequestHead head = get("/");
  head.headers.add("Connection", "X-Forwarded-For");
  head.headers.add("X-Forwarded-For", "6.6.6.6");
  EXPECT_EQ(serializeUpstreamRequest(head, "127.0.0.1"),
            "GET / HTTP/1.1\r\nHost: example\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n");
}

TEST(UpstreamRequest, KeepsUpgradeForUpgradeRequests) {
  RequestHead head = get("/exec");
  head.method = "POST";
  head.upgrade = true;
  head.headers.add("Connection", "Upgrade, keep-alive");
  head.headers.add("Upgrade", "SPDY/3.1");
  EXPECT_EQ(serializeUpstreamRequest(head, "127.0.0.1"),
            "POST /exec HTTP/1.1\r\nHost: example\r\nUpgrade: SPDY/3.1\r\n"
            "Connection: Upgrade\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n");
}

TEST(UpstreamRequest, DropsUpgradeWhenNotAnUpgrade) {
  RequestHead head = get("/");
  head.headers.add("Upgrade", "h2c");
  EXPECT_EQ(serializeUpstreamRequest(head, "127.0.0.1"),
            "GET / HTTP/1.1\r\nHost: example\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n");
}

TEST(UpstreamRequest, RechunksChunkedBodiesAndDropsExpect) {
  RequestHead head = get("/upload");
  head.method = "PUT";
  head.chunked = true;
  head.headers.add("Transfer-Encoding", "chunked");
  head.headers.add("Expect", "100-continue");
  EXPECT_EQ(serializeUpstreamRequest(head, "127.0.0.1"),
            "PUT /upload HTTP/1.1\r\nHost: example\r\nX-Forwarded-For: 127.0.0.1\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");
}

ResponseHead response(int status) {
  ResponseHead head;
  head.status = status;
  head.reason = "OK";
  head.headers.add("Content-Type", "application/json");
  return head;
}

TEST(DownstreamResponse, ContentLengthPassesThrough) {
  ResponseHead up = response(200);
  up.headers.add("Content-Length", "12");
  up.headers.add("Connection", "keep-alive");
  up.content_length = 12;
  DownstreamResponse out = buildDownstreamResponse(up, get("/"), true, true);
  EXPECT_EQ(out.framing, BodyFraming::kContentLength);
  EXPECT_FALSE(out.close_after);
  EXPECT_EQ(out.head,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n");
}

TEST(DownstreamResponse, CloseDelimitedBecomesChunkedForHttp11) {
  DownstreamResponse out = buildDownstreamResponse(response(200), get("/"), true, true);
  EXPECT_EQ(out.framing, BodyFraming::kChunked);
  EXPECT_EQ(
      out.head,
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST(DownstreamResponse, ChunkedForHttp10ClientIsCloseDelimited) {
  ResponseHead up = response(200);
  up.chunked = true;
  up.headers.add("Transfer-Encoding", "chunked");
  RequestHead req = get("/");
  req.http_minor = 0;
  DownstreamResponse out = buildDownstreamResponse(up, req, true, false);
  EXPECT_EQ(out.framing, BodyFraming::kUntilClose);
  EXPECT_TRUE(out.close_after);
  EXPECT_EQ(out.head,
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n");
}

TEST(DownstreamResponse, SwitchingProtocolsKeepsUpgrade) {
  ResponseHead up;
  up.status = 101;
  up.reason = "Switching Protocols";
  up.headers.add("Connection", "Upgrade");
  up.headers.add("Upgrade", "websocket");
  up.headers.add("Sec-WebSocket-Accept", "abc");
  RequestHead req = get("/");
  req.upgrade = true;
  DownstreamResponse out = buildDownstreamResponse(up, req, true, true);
  EXPECT_EQ(out.framing, BodyFraming::kNone);
  EXPECT_FALSE(out.close_after);
  EXPECT_EQ(
      out.head,
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: abc\r\n"
      "Connection: Upgrade\r\n\r\n");
}

TEST(DownstreamResponse, HeadResponseKeepsContentLengthWithoutBody) {
  ResponseHead up = response(200);
  up.headers.add("Content-Length", "99");
  up.content_length = 99;
  RequestHead req = get("/");
  req.method = "HEAD";
  DownstreamResponse out = buildDownstreamResponse(up, req, false, true);
  EXPECT_EQ(out.framing, BodyFraming::kNone);
  EXPECT_NE(out.head.find("Content-Length: 99\r\n"), std::string::npos);
}

TEST(LocalResponse, StatusBodyWithLengthAndClose) {
  HeaderMap extra;
  extra.add("X-Content-Type-Options", "nosniff");
  EXPECT_EQ(serializeLocalResponse(403, "application/json", "{}", extra, true, 1),
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
            "X-Content-Type-Options: nosniff\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
}

}  // namespace
}  // namespace aaproxy

namespace aaproxy {
namespace {

TEST(HeaderLineCollector, FragmentsEmptyValuesAndTrailers) {
  HeaderMap headers;
  HeaderLineCollector collect;
  auto field = [&](std::string_view s) { collect.field(headers, s.data(), s.size()); };
  auto value = [&](std::string_view s) { collect.value(headers, s.data(), s.size()); };
  field("Us");
  field("er-Agent");
  value("kube");
  value("ctl");
  field("X-Empty");
  value("");  // http_parser reports an empty value with a zero-length call
  field("Accept");
  value("*/*");
  collect.headEnded();
  field("X-Trailer");  // a chunked body's trailer: dropped
  value("1");
  ASSERT_EQ(headers.size(), 3u);
  EXPECT_EQ(headers.get("User-Agent"), "kubectl");
  EXPECT_EQ(headers.get("X-Empty"), "");
  EXPECT_EQ(headers.get("Accept"), "*/*");
  EXPECT_FALSE(headers.has("X-Trailer"));
  // The next message starts clean.
  headers.clear();
  collect.reset();
  field("Host");
  value("h");
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers.get("Host"), "h");
}

}  // namespace
}  // namespace aaproxy
