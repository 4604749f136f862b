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
  std::string line;
  if (g_log_json.load(std::memory_order_relaxed)) {
    // The shape of klog's JSON output: ts (seconds), caller, msg, and v or err severity.
    char prefix[160];
    int m = std::snprintf(prefix, sizeof(prefix), "{\"ts\":%ld.%03ld,\"caller\":\"%s:%d\",",
                          static_cast<long>(tv.tv_sec), static_cast<long>(tv.tv_usec / 1000), base, line_);
    line.assign(prefix, m > 0 ? static_cast<size_t>(m) : 0);
    line += severity_ == 'E' ? "\"severity\":\"error\"," : severity_ == 'W' ? "\"severity\":\"warning\"," : "";
    line += "\"msg\":\"";
    for (char c : stream_.str()) {
      switch (c) {
        case '"': line += "\\\""; break;
        case '\\': line += "\\\\"; break;
        case '\n': line += "\\n"; break;
        case '\t': line += "\\t"; break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char esc[8];
            std::snprintf(esc, sizeof(esc), "\\u%04x", c);
            line += esc;
          } else {
            line += c;
          }
      }
    }
    line += "\"}\n";
  } else {
    line.assign(header, n > 0 ? static_cast<size_t>(n) : 0);
    line += stream_.str();
    line += '\n';
  }
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace aaproxy
