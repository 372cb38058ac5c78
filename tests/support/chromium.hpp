// tests/support/chromium.hpp - headless Chromium driven through the DevTools protocol,
// for tests where a real browser is the client.
//
// The browser runs as a child process in a process group of its own, with a fresh
// profile in a temporary directory, and talks over --remote-debugging-pipe: JSON messages
// separated by NUL bytes on descriptors 3 (commands) and 4 (answers), so no WebSocket and
// no library is needed. Every wait runs the test's event loop (the servers a page talks
// to live in the test process) and is bounded in time. The destructor kills the group by
// its id, reaps it and removes the directory.
//
// The binary comes from TETHER_CHROMIUM (tests/support/with_chromium.sh sets it, and
// skips the test when no Chromium is installed). A browser that does not start, dies or
// does not answer fails the test with the end of its log, never silently.
#pragma once

#include "loopback.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tt {

/// `s` as a JSON string literal.
inline std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(c));
          out += esc;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

/// The JSON string value of the first `"key":"..."` in `json`, unescaped; nullopt if none.
inline std::optional<std::string> json_string_field(std::string_view json, std::string_view key) {
  const std::string pattern = "\"" + std::string(key) + "\":\"";
  auto pos = json.find(pattern);
  if (pos == std::string_view::npos) return std::nullopt;
  pos += pattern.size();
  std::string out;
  while (pos < json.size() && json[pos] != '"') {
    char c = json[pos++];
    if (c != '\\' || pos >= json.size()) {
      out += c;
      continue;
    }
    c = json[pos++];
    switch (c) {
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        const unsigned cp = static_cast<unsigned>(std::stoul(std::string(json.substr(pos, 4)), nullptr, 16));
        pos += 4;
        if (cp < 0x80) {
          out += static_cast<char>(cp);
        } else if (cp < 0x800) {
          out += static_cast<char>(0xC0 | (cp >> 6));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {  // pages here write ASCII; surrogate pairs are not decoded
          out += static_cast<char>(0xE0 | (cp >> 12));
          out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        }
        break;
      }
      default: out += c;  // \" \\ \/
    }
  }
  return out;
}

/// Headless Chromium and its DevTools pipe.
class chromium {
 public:
  /// One tab: its target (to close it) and its session (to talk to its page).
  struct tab {
    std::string target;
    std::string session;
  };

  /// Starts the browser. Fails the test (with the reason) if TETHER_CHROMIUM is unset or
  /// the browser does not answer within `startup`.
  explicit chromium(tether::event_loop& loop, std::chrono::milliseconds startup = std::chrono::seconds(30)) : loop_(loop) {
    const char* binary = std::getenv("TETHER_CHROMIUM");
    if (!binary || !*binary)
      FAIL("TETHER_CHROMIUM is not set: run the browser tests through meson (suite 'browser'), which finds Chromium "
           "(tests/support/with_chromium.sh), or set it to a Chromium binary");
    char dir_template[] = "/tmp/tether-chromium-XXXXXX";
    if (!::mkdtemp(dir_template)) FAIL("mkdtemp failed");
    dir_ = dir_template;
    try {
      start(binary);
      // The first answer proves the browser is up and the pipe works.
      const std::string version = call("Browser.getVersion", "{}", {}, startup);
      product_ = json_string_field(version, "product").value_or("?");
    } catch (...) {  // no destructor runs for a constructor that throws: stop it here
      kill();
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      throw;
    }
  }
  chromium(const chromium&) = delete;
  chromium& operator=(const chromium&) = delete;
  ~chromium() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  /// False once kill() ran (or the browser was never started).
  bool running() const noexcept { return pid_ > 0; }

  /// "Chromium/156.0.8078.114" or similar.
  const std::string& product() const noexcept { return product_; }

  /// Opens a new tab on `url`, attached for commands.
  tab open(std::string_view url) {
    tab t;
    const std::string created = call("Target.createTarget", "{\"url\":" + json_quote(url) + "}");
    t.target = field(created, "targetId");
    const std::string attached =
        call("Target.attachToTarget", "{\"targetId\":" + json_quote(t.target) + ",\"flatten\":true}");
    t.session = field(attached, "sessionId");
    wait_loaded(t);
    return t;
  }

  /// Waits until the tab shows a page that was parsed (its scripts ran): not the
  /// about:blank a new tab starts with, not still loading.
  void wait_loaded(const tab& t, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      const auto v = try_eval(t, "location.href + ' ' + document.readyState");
      if (v && !v->starts_with("about:blank") && !v->ends_with(" loading")) return;
      if (std::chrono::steady_clock::now() > deadline)
        FAIL("the page did not load within " << limit.count() << " ms: " << v.value_or("(no answer)"));
      run_for(loop_, std::chrono::milliseconds(10));
    }
  }

  /// Evaluates `expression` in the tab's page; nullopt if it threw (or the page was
  /// between documents).
  std::optional<std::string> try_eval(const tab& t, std::string_view expression) {
    const std::string answer = call("Runtime.evaluate",
                                    "{\"expression\":" + json_quote(expression) + ",\"returnByValue\":true}", t.session,
                                    std::chrono::seconds(10), true);
    if (is_error(answer) || answer.find("\"exceptionDetails\"") != std::string::npos) return std::nullopt;
    return json_string_field(answer, "value");
  }

  /// Evaluates `expression` in the tab's page; it must produce a string.
  std::string eval(const tab& t, std::string_view expression) {
    const std::string answer = call("Runtime.evaluate",
                                    "{\"expression\":" + json_quote(expression) + ",\"returnByValue\":true}", t.session);
    if (answer.find("\"exceptionDetails\"") != std::string::npos)
      FAIL("the page threw evaluating " << expression << ": " << answer.substr(0, 600));
    return field(answer, "value");
  }

  /// Evaluates `expression` until `done(value)` holds or `limit` passes; returns the last
  /// value. The loop runs in between, so the test's servers keep serving the page.
  template <class Done>
  std::string wait_eval(const tab& t, std::string_view expression, Done done,
                        std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::string value = eval(t, expression);
    while (!done(value) && std::chrono::steady_clock::now() < deadline) {
      run_for(loop_, std::chrono::milliseconds(20));
      value = eval(t, expression);
    }
    return value;
  }

  /// Navigates the tab to `url` (about:blank leaves the page: its connections close).
  void navigate(const tab& t, std::string_view url) {
    (void)call("Page.navigate", "{\"url\":" + json_quote(url) + "}", t.session);
  }

  /// Closes the tab, as a user closing it would.
  void close(const tab& t) { (void)call("Target.closeTarget", "{\"targetId\":" + json_quote(t.target) + "}"); }

  /// Kills the whole browser (every process of its group) with SIGKILL and reaps it.
  void kill() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (to_browser_ >= 0) ::close(std::exchange(to_browser_, -1));
    if (from_browser_ >= 0) ::close(std::exchange(from_browser_, -1));
  }

  /// The browser's stderr, without the D-Bus noise of a machine with no session bus.
  std::string log_tail(std::size_t lines = 20) const {
    std::ifstream in(dir_ + "/stderr.log");
    std::vector<std::string> kept;
    for (std::string line; std::getline(in, line);)
      if (line.find("dbus") == std::string::npos) kept.push_back(line);
    std::string out;
    for (std::size_t i = kept.size() > lines ? kept.size() - lines : 0; i < kept.size(); ++i) out += kept[i] + "\n";
    return out;
  }

 private:
  void start(const char* binary) {
    int commands[2];
    int answers[2];
    if (::pipe2(commands, O_CLOEXEC) != 0 || ::pipe2(answers, O_CLOEXEC) != 0) FAIL("pipe2 failed");
    const std::string profile = "--user-data-dir=" + dir_ + "/profile";
    const std::string log = dir_ + "/stderr.log";
    std::vector<std::string> args = {
        binary,
        "--headless",
        "--no-sandbox",  // tests run as root in CI; the pages are the tests' own
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-features=MediaRouter,OptimizationHints,Translate",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  // only loopback, no lookups
        "--remote-debugging-pipe",
        profile,
        "about:blank",
    };
    pid_ = ::fork();
    if (pid_ < 0) FAIL("fork failed");
    if (pid_ == 0) {
      ::setpgid(0, 0);  // its own group: kill() ends the renderers and helpers too
      // Descriptors 3 and 4 are the DevTools pipe; move the ends there without CLOEXEC.
      const int in = ::fcntl(commands[0], F_DUPFD, 10);
      const int out = ::fcntl(answers[1], F_DUPFD, 10);
      if (in < 0 || out < 0 || ::dup2(in, 3) != 3 || ::dup2(out, 4) != 4) ::_exit(126);
      const int err = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
      if (err >= 0) {
        ::dup2(err, STDERR_FILENO);
        ::dup2(err, STDOUT_FILENO);
      }
      if (null >= 0) ::dup2(null, STDIN_FILENO);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(binary, argv.data());
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);  // also from here: whichever runs first
    ::close(commands[0]);
    ::close(answers[1]);
    to_browser_ = commands[1];
    from_browser_ = answers[0];
    ::fcntl(from_browser_, F_SETFL, ::fcntl(from_browser_, F_GETFL) | O_NONBLOCK);
  }

  std::string field(const std::string& answer, std::string_view key) const {
    auto v = json_string_field(answer, key);
    if (!v) FAIL("no " << key << " in the browser's answer: " << answer.substr(0, 600));
    return *v;
  }

  /// Sends one command and waits (running the loop) for its answer; fails the test on an
  /// error answer, a dead browser or a timeout.
  std::string call(std::string_view method, std::string_view params, std::string_view session = {},
                   std::chrono::milliseconds limit = std::chrono::seconds(10), bool error_is_an_answer = false) {
    if (pid_ <= 0) FAIL("the browser is not running (killed earlier in this test)");
    const int id = ++last_id_;
    std::string message = "{\"id\":" + std::to_string(id) + ",\"method\":" + json_quote(method) + ",\"params\":" +
                          std::string(params);
    if (!session.empty()) message += ",\"sessionId\":" + json_quote(session);
    message += "}";
    message.push_back('\0');
    for (std::string_view rest = message; !rest.empty();) {
      const ssize_t n = ::write(to_browser_, rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) FAIL("the browser closed its DevTools pipe (did it exit?); its log:\n" << log_tail());
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    const std::string prefix = "{\"id\":" + std::to_string(id) + ",";
    std::string answer;
    bool gone = false;
    const bool answered = run_until(loop_, [&] {
      gone = !read_available();
      for (std::size_t end; (end = inbox_.find('\0')) != std::string::npos;) {
        std::string m = inbox_.substr(0, end);
        inbox_.erase(0, end + 1);
        if (m.starts_with(prefix)) answer = std::move(m);
      }
      return !answer.empty() || gone;
    }, limit);
    if (answer.empty()) {
      if (gone) FAIL("the browser exited while answering " << method << "; its log:\n" << log_tail());
      FAIL("the browser did not answer " << method << " within " << limit.count() << " ms (answered: " << answered
                                         << "); its log:\n"
                                         << log_tail());
    }
    if (is_error(answer) && !error_is_an_answer) FAIL(method << " failed: " << answer.substr(0, 600));
    return answer;
  }

  static bool is_error(const std::string& answer) {
    const auto comma = answer.find(',');
    return comma != std::string::npos && answer.compare(comma + 1, 8, "\"error\":") == 0;
  }

  /// Appends what the pipe holds to inbox_; false once the browser closed it.
  bool read_available() {
    char buf[65536];
    for (;;) {
      const ssize_t n = ::read(from_browser_, buf, sizeof buf);
      if (n > 0) {
        inbox_.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) return false;
      return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    }
  }

  tether::event_loop& loop_;
  std::string dir_;
  std::string product_;
  pid_t pid_ = -1;
  int to_browser_ = -1;
  int from_browser_ = -1;
  int last_id_ = 0;
  std::string inbox_;
};

}  // namespace tt
