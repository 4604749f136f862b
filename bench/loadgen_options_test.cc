#include "bench/loadgen_options.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

TEST(ParseLoadgenUrlTest, Table) {
  const struct {
    std::string url;
    bool tls;
    std::string host;
    uint16_t port;
    std::string path;
    std::string host_header;
  } cases[] = {
      {"https://127.0.0.1:8443/apis/x?watch=1", true, "127.0.0.1", 8443, "/apis/x?watch=1",
       "127.0.0.1:8443"},
      {"http://localhost/", false, "localhost", 80, "/", "localhost"},
      {"https://example.com", true, "example.com", 443, "/", "example.com"},
      {"http://[::1]:9000/a", false, "::1", 9000, "/a", "[::1]:9000"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<LoadgenUrl> got = parseLoadgenUrl(c.url);
    ASSERT_TRUE(got.ok()) << c.url << ": " << got.status();
    EXPECT_EQ(got->tls, c.tls) << c.url;
    EXPECT_EQ(got->host, c.host) << c.url;
    EXPECT_EQ(got->port, c.port) << c.url;
    EXPECT_EQ(got->path_and_query, c.path) << c.url;
    EXPECT_EQ(got->host_header, c.host_header) << c.url;
  }
}

TEST(ParseLoadgenUrlTest, Rejects) {
  for (const char* url : {"ftp://x/", "127.0.0.1:80/", "http://:80/", "http://h:0/",
                          "http://h:65536/", "http://h:8x/", "http://[::1/", "http://u@h/"}) {
    EXPECT_FALSE(parseLoadgenUrl(url).ok()) << url;
  }
}

TEST(ParseLoadgenOptionsTest, DefaultsAndValues) {
  absl::StatusOr<LoadgenOptions> got = parseLoadgenOptions(
      {"--url", "https://127.0.0.1:1/p", "--cert=c.pem", "--key", "k.pem", "--cacert", "ca.pem",
       "--connections", "8", "--threads=2", "--duration", "1500ms", "--header", "X-A:  1",
       "--header", "Accept: application/json"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->cert_file, "c.pem");
  EXPECT_EQ(got->key_file, "k.pem");
  EXPECT_EQ(got->cacert_file, "ca.pem");
  EXPECT_EQ(got->connections, 8);
  EXPECT_EQ(got->threads, 2);
  EXPECT_EQ(got->duration, absl::Milliseconds(1500));
  EXPECT_EQ(got->timeout, absl::Seconds(10));
  EXPECT_EQ(got->headers, (std::vector<std::string>{"X-A: 1", "Accept: application/json"}));

  absl::StatusOr<LoadgenOptions> defaults = parseLoadgenOptions({"--url", "http://h:1/"});
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->connections, 64);
  EXPECT_EQ(defaults->threads, 1);
  EXPECT_EQ(defaults->duration, absl::Seconds(10));
}

TEST(ParseLoadgenOptionsTest, ThreadsCappedByConnections) {
  absl::StatusOr<LoadgenOptions> got =
      parseLoadgenOptions({"--url", "http://h:1/", "--connections", "2", "--threads", "8"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->threads, 2);
}

TEST(ParseLoadgenOptionsTest, ErrorsNameTheFlag) {
  const struct {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{}, "--url is required (see --help)"},
      {{"--url", "http://h/", "--connections", "0"},
       "--connections: want a positive integer, got \"0\""},
      {{"--url", "http://h/", "--duration", "10"},
       "--duration: want a positive duration like 10s, got \"10\""},
      {{"--url", "http://h/", "--header", "NoColon"},
       "--header: want 'Name: value', got \"NoColon\""},
      {{"--url", "http://h/", "--bogus", "1"}, "unknown flag --bogus (see --help)"},
      {{"--url"}, "--url needs a value"},
      {{"--url", "https://h/"}, "https:// needs --cacert FILE or --insecure"},
      {{"--url", "http://h/", "--cacert", "ca.pem"},
       "--cert/--key/--cacert/--insecure need an https:// --url"},
      {{"--url", "https://h/", "--insecure", "--cert", "c.pem"}, "--cert and --key go together"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<LoadgenOptions> got = parseLoadgenOptions(c.args);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().message(), c.message);
  }
}

TEST(ParseLoadgenOptionsTest, HelpNeedsNoUrl) {
  absl::StatusOr<LoadgenOptions> got = parseLoadgenOptions({"--help"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->help);
}

}  // namespace
}  // namespace aaproxy
