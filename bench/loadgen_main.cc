// loadgen: closed-loop HTTP/1.1 keep-alive load generator that can present a client certificate
// (mTLS), which wrk cannot. Prints one JSON line with the results (see bench/README.md).
#include <sys/resource.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/load_runner.h"
#include "bench/loadgen_options.h"

namespace {

double cpuSecondsOfProcess() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return absl::ToDoubleSeconds(absl::DurationFromTimeval(usage.ru_utime) +
                               absl::DurationFromTimeval(usage.ru_stime));
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<aaproxy::LoadgenOptions> options = aaproxy::parseLoadgenOptions(args);
  if (!options.ok()) {
    std::fprintf(stderr, "loadgen: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(aaproxy::kLoadgenUsage, stdout);
    return 0;
  }
  absl::StatusOr<aaproxy::LoadResult> result = aaproxy::runLoad(*options);
  if (!result.ok()) {
    std::fprintf(stderr, "loadgen: %s\n", std::string(result.status().message()).c_str());
    return 2;
  }
  std::printf("%s\n", aaproxy::loadResultJson(*options, *result, cpuSecondsOfProcess()).c_str());
  return 0;
}
