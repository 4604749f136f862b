// One write(2) per line so that lines from worker threads never interleave.
#include "common/logging.h"

#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>

namespace aaproxy {

LogMessage::LogMessage(char severity, const char* file, int line)
    : severity_(severity), file_(file), line_(line) {}

LogMessage::~LogMessage() {
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  localtime_r(&tv.tv_sec, &t);
  const char* base = std::strrchr(file_, '/');
  base = base != nullptr ? base + 1 : file_;
  char header[128];
  int n = std::snprintf(header, sizeof(header), "%c%02d%02d %02d:%02d:%02d.%06ld %7ld %s:%d] ",
                        severity_, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                        static_cast<long>(tv.tv_usec), static_cast<long>(syscall(SYS_gettid)),
                        base, line_);
  std::string line(header, n > 0 ? static_cast<size_t>(n) : 0);
  line += stream_.str();
  line += '\n';
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace aaproxy
