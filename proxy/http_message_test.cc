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
  head.headers.add("TE", "gzip");
  head.headers.add("Trailer", "X-Checksum");
  head.headers.add("Proxy-Authorization", "Basic x");
  head.headers.add("Accept", "application/json");
  EXPECT_EQ(serializeUpstreamRequest(head, "10.0.0.1"),
            "GET /apis/x?watch=1 HTTP/1.1\r\nHost: example\r\nAccept: application/json\r\n"
            "X-Forwarded-For: 10.0.0.1\r\n\r\n");
}

TEST(UpstreamRequest, TeTrailersTellsTheBackendTrailersWillBeForwarded) {
  // Go's ReverseProxy (golang/go#21096): TE is hop-by-hop, but "trailers" in it is kept.
  RequestHead head = get("/");
  head.headers.add("Connection", "TE");
  head.headers.add("TE", "deflate, trailers");
  EXPECT_EQ(serializeUpstreamRequest(head, "10.0.0.1"),
            "GET / HTTP/1.1\r\nHost: example\r\nTe: trailers\r\n"
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

TEST(Trailers, WhatMayBeForwarded) {
  // httpguts.ValidTrailerHeader's refusals, hop-by-hop and pseudo-header fields, non-tokens.
  constexpr std::string_view kRefused[] = {"Authorization",
                                           "cache-control",
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
                                           "TE",
                                           "Trailer",
                                           "transfer-encoding",
                                           "Upgrade",
                                           "WWW-Authenticate",
                                           "If-Match",
                                           "if-none-match",
                                           ":status",
                                           ":path",
                                           "",
                                           "X Bad",
                                           "X-Bad:"};
  for (std::string_view name : kRefused) {
    EXPECT_FALSE(isForwardableTrailer(name)) << name;
  }
  for (std::string_view name : {"X-Checksum", "grpc-status", "Server-Timing", "Digest", "X-If"}) {
    EXPECT_TRUE(isForwardableTrailer(name)) << name;
  }
}

TEST(Trailers, LastChunkCarriesOnlyForwardableTrailers) {
  HeaderMap head;
  head.add("Connection", "X-Hop");
  HeaderMap trailers;
  trailers.add("X-Checksum", "abc");
  trailers.add("Content-Length", "5");
  trailers.add("X-Hop", "1");
  trailers.add("Grpc-Status", "0");
  std::string out = "kept ";
  appendLastChunk(trailers, head, out);
  EXPECT_EQ(out, "kept 0\r\nX-Checksum: abc\r\nGrpc-Status: 0\r\n\r\n");
  out.clear();
  appendLastChunk(HeaderMap(), head, out);
  EXPECT_EQ(out, "0\r\n\r\n");
  std::vector<std::pair<std::string, std::string>> fields;
  appendHttp2TrailerFields(trailers, head, fields);
  EXPECT_EQ(fields, (std::vector<std::pair<std::string, std::string>>{{"x-checksum", "abc"},
                                                                      {"grpc-status", "0"}}));
}

TEST(Trailers, AnnouncementNamesForwardableTrailersOnly) {
  HeaderMap headers;
  headers.add("Connection", "x-hop");
  headers.add("Trailer", "X-Checksum, Content-Type,X-Hop");
  headers.add("Trailer", " , Server-Timing ");
  HeaderMap names = forwardableTrailerNames(headers);
  std::string out;
  appendTrailerAnnouncement(names, out);
  EXPECT_EQ(out, "Trailer: X-Checksum, Server-Timing\r\n");
  out.clear();
  appendTrailerAnnouncement(HeaderMap(), out);
  EXPECT_EQ(out, "");
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

// A backend naming Content-Length in Connection must not leave a length-framed body without
// its length (the client would read the body into the next response).
TEST(DownstreamResponse, ContentLengthNamedByConnectionStillFramesTheBody) {
  ResponseHead up = response(200);
  up.headers.add("Content-Length", "5");
  up.headers.add("Connection", "content-length");
  up.content_length = 5;
  DownstreamResponse out = buildDownstreamResponse(up, get("/"), true, true);
  EXPECT_EQ(out.framing, BodyFraming::kContentLength);
  EXPECT_EQ(out.head,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n");
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

ResponseHead chunkedWithTrailers() {
  ResponseHead up = response(200);
  up.chunked = true;
  up.headers.add("Trailer", "X-Checksum, Content-Length");
  up.headers.add("Transfer-Encoding", "chunked");
  return up;
}

TEST(DownstreamResponse, ChunkedResponseAnnouncesItsForwardableTrailers) {
  DownstreamResponse out = buildDownstreamResponse(chunkedWithTrailers(), get("/"), true, true);
  EXPECT_EQ(out.framing, BodyFraming::kChunked);
  EXPECT_EQ(out.head,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTrailer: X-Checksum\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");
  // An HTTP/1.0 client gets no chunks, so no trailers, so no announcement.
  RequestHead req = get("/");
  req.http_minor = 0;
  out = buildDownstreamResponse(chunkedWithTrailers(), req, true, false);
  EXPECT_EQ(out.head,
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n");
  // Nor does a body the backend does not chunk.
  ResponseHead close_delimited = response(200);
  close_delimited.headers.add("Trailer", "X-Checksum");
  out = buildDownstreamResponse(close_delimited, get("/"), true, true);
  EXPECT_EQ(out.head.find("Trailer"), std::string::npos);
}

TEST(Http2ResponseFields, ChunkedResponseAnnouncesItsForwardableTrailers) {
  std::vector<std::pair<std::string, std::string>> fields;
  appendHttp2ResponseFields(chunkedWithTrailers(), fields);
  EXPECT_EQ(fields, (std::vector<std::pair<std::string, std::string>>{
                        {"content-type", "application/json"}, {"trailer", "X-Checksum"}}));
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

TEST(HeaderLineCollector, TrailersGoToTheirOwnMapNeverTheHead) {
  HeaderMap headers;
  HeaderMap trailers;
  HeaderLineCollector collect;
  auto field = [&](std::string_view s) { collect.field(headers, trailers, s.data(), s.size()); };
  auto value = [&](std::string_view s) { collect.value(headers, trailers, s.data(), s.size()); };
  field("Host");
  value("h");
  collect.headEnded();
  field("X-Check");
  field("sum");
  value("a");
  value("bc");
  field("X-Empty");
  value("");
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers.get("Host"), "h");
  ASSERT_EQ(trailers.size(), 2u);
  EXPECT_EQ(trailers.get("X-Checksum"), "abc");
  EXPECT_EQ(trailers.get("X-Empty"), "");
  // The next message's head starts clean, in the head's map.
  headers.clear();
  trailers.clear();
  collect.reset();
  field("Accept");
  value("*/*");
  EXPECT_EQ(headers.size(), 1u);
  EXPECT_TRUE(trailers.empty());
}

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

// Found by fuzz/http1_request_fuzzer: Debian's http-parser is not built strict, so it delivers
// "X-Remote-User : x" as a field named "X-Remote-User " (past every identity-header filter), and
// it never checks the first byte of a value ("Name: \0x").
TEST(HeaderLineCollector, RefusesWhitespaceInNamesAndControlBytesInValues) {
  HeaderMap headers;
  HeaderMap trailers;
  HeaderLineCollector collect;
  auto field = [&](std::string_view s) {
    return collect.field(headers, trailers, s.data(), s.size());
  };
  auto value = [&](std::string_view s) {
    return collect.value(headers, trailers, s.data(), s.size());
  };
  EXPECT_TRUE(field("X-Remote-"));
  EXPECT_FALSE(field("User "));
  EXPECT_FALSE(field("Bad Header"));
  EXPECT_FALSE(field("X\x01"));
  EXPECT_TRUE(field("Accept"));
  EXPECT_FALSE(value(std::string_view("\0x", 2)));
  EXPECT_FALSE(value("a\x7f"));
  EXPECT_FALSE(value("\x1b[31m"));
  EXPECT_TRUE(value("tab\tand obs-text \xc3\xa9"));
  collect.headEnded();
  EXPECT_FALSE(field("X-Trailer "));  // trailers too
  EXPECT_TRUE(field("X-Trailer"));
  EXPECT_FALSE(value(std::string_view("\0", 1)));
}

// Found by fuzz/http1_request_fuzzer: "Connection: content-length" dropped the Content-Length
// line while the body was still copied to the backend, which then read it as its next request.
TEST(UpstreamRequest, ContentLengthNamedByConnectionStillFramesTheBody) {
  RequestHead head = get("/apis/g/v1/things");
  head.method = "POST";
  head.headers.add("Connection", "keep-alive, Content-Length");
  head.headers.add("content-length", "5");
  head.content_length = 5;
  EXPECT_EQ(serializeUpstreamRequest(head, "10.0.0.1"),
            "POST /apis/g/v1/things HTTP/1.1\r\nHost: example\r\ncontent-length: 5\r\n"
            "X-Forwarded-For: 10.0.0.1\r\n\r\n");
}

// Found by fuzz/http1_request_fuzzer: an obs-fold left "Content-Length: 2\t" in the header, which
// http-parser accepts from the client (as 2) but refuses from the proxy.
TEST(UpstreamRequest, ContentLengthIsTheParsedLength) {
  RequestHead head = get("/x");
  head.method = "PUT";
  head.headers.add("Content-Length", "2\t");
  head.content_length = 2;
  EXPECT_EQ(serializeUpstreamRequest(head, "10.0.0.1"),
            "PUT /x HTTP/1.1\r\nHost: example\r\nContent-Length: 2\r\n"
            "X-Forwarded-For: 10.0.0.1\r\n\r\n");
}

}  // namespace
}  // namespace aaproxy
