// tether/server_group.hpp - one server per core: N event loops, one thread each.
//
// A server_group runs N loops, each on its own thread with its own server. Every loop
// listens on the same address and port. By default (accept_mode::balanced) they share one
// listening socket, and a loop that has more than one connection above the least loaded
// loop stops accepting until the others caught up, so the loops hold equal shares of the
// open connections. With accept_mode::reuseport each loop has a socket of its own, all
// opened with SO_REUSEPORT, and the kernel spreads connections by a hash of their
// addresses and ports (fair on average, not balanced: docs/scaling.md). Either way no loop
// ever touches another's connections: a connection lives and dies on the loop that
// accepted it, and the close path, limits and timeouts work per loop exactly as they do
// for a lone server.
//
// Routes and policies are set up once, by a callable the group calls on each loop's
// thread with that loop's server (and loop, and index), before any loop serves. What the
// callable returns (if anything) is kept for the loop's lifetime and destroyed on its
// thread before the server: the place for per-loop objects such as a broker endpoint.
//
//     tether::server_group group{{.threads = 4}};
//     auto port = group.start("0.0.0.0", 8080, [](tether::server& srv) {
//       srv.fallback([](tether::request& req) { req.reply(200, "hello"); });
//     });
//     if (!port) return 1;
//     group.join();  // until stop() is called (from any thread or a signal handler)
//
// Threads: stop() writes to one eventfd per loop and never calls libevent from the
// calling thread, so it is safe from any thread, a signal handler included, without
// evthread_use_pthreads() (see wakeup.hpp).
/// @file
/// tether::basic_server_group: one server per core, each on its own loop and thread,
/// sharing one port (one balanced socket, or SO_REUSEPORT). See docs/scaling.md.
#pragma once

#include <tether/config.hpp>
#include <tether/cstring_view.hpp>
#include <tether/detail/chrono.hpp>
#include <tether/detail/owner.hpp>
#include <tether/detail/sync.hpp>
#include <tether/detail/thread.hpp>
#include <tether/drain_on_signals.hpp>
#include <tether/error.hpp>
#include <tether/event_loop.hpp>
#include <tether/server.hpp>
#include <tether/wakeup.hpp>

#include <event2/event.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

TETHER_BEGIN_NAMESPACE

/// How a server_group's loops share its port (start(address, port, setup)).
enum class accept_mode : std::uint8_t {
  /// One listening socket watched by every loop. A loop that has more than one connection
  /// above the least loaded loop stops accepting until the others have caught up, so the
  /// loops' shares of open connections never differ by more than about one.
  balanced,
  /// One SO_REUSEPORT socket per loop: the kernel hashes each connection to a socket, a
  /// random spread that is fair on average only (docs/scaling.md has the figures).
  reuseport,
};

/// How a server_group runs.
struct group_options {
  /// Loops (and threads). 0: std::thread::hardware_concurrency(), at least 1.
  unsigned threads = 0;
  /// listen(2) backlog of each listening socket.
  int backlog = 1024;
  /// How the loops share the port: one balanced socket, or one SO_REUSEPORT socket each.
  accept_mode accept = accept_mode::balanced;
  /// How each loop's event_base is created.
  loop_options loop{};
  /// If above zero, SIGTERM and SIGINT drain the group within this deadline (a
  /// drain_on_signals on the first loop; basic_server_group::drain). One loop per process
  /// may watch signals: a second group with it fails to start (errc::signals_in_use);
  /// drain the others with this one (basic_server_group::also_drain).
  std::chrono::milliseconds signal_drain{0};
};

namespace detail {

/// The loop's thread calls setup(server, loop, index), setup(server, loop) or setup(server).
template <class Setup, class Server>
concept group_setup = std::copy_constructible<Setup> &&
                      (std::invocable<Setup&, Server&, event_loop&, unsigned> ||
                       std::invocable<Setup&, Server&, event_loop&> || std::invocable<Setup&, Server&>);

template <class Setup, class Server>
decltype(auto) call_setup(Setup& setup, Server& srv, event_loop& loop, unsigned index) {
  if constexpr (std::invocable<Setup&, Server&, event_loop&, unsigned>) return setup(srv, loop, index);
  else if constexpr (std::invocable<Setup&, Server&, event_loop&>) return setup(srv, loop);
  else return setup(srv);
}

template <class Setup, class Server>
using setup_result_t = decltype(call_setup(std::declval<Setup&>(), std::declval<Server&>(),
                                           std::declval<event_loop&>(), 0u));

template <class T>
inline constexpr bool is_result = false;
template <class T>
inline constexpr bool is_result<result<T>> = true;

/// An IPv4 or IPv6 literal ("127.0.0.1", "::", "[::1]") and a port as a socket address.
struct socket_address {
  sockaddr_storage ss{};
  socklen_t len = 0;

  static result<socket_address> parse(std::string_view address, std::uint16_t port) noexcept {
    socket_address a;
    char text[INET6_ADDRSTRLEN + 2] = {};
    if (address.size() >= 2 && address.front() == '[' && address.back() == ']') address = address.substr(1, address.size() - 2);
    if (address.empty() || address.size() >= sizeof text) return errc::invalid_address;
    std::memcpy(text, address.data(), address.size());
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
    if (::inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(port);
      a.len = sizeof(sockaddr_in);
    } else if (::inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(port);
      a.len = sizeof(sockaddr_in6);
    } else {
      return errc::invalid_address;
    }
    return a;
  }
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&ss); }
};

/// A TCP socket bound to `a`, listening unless `backlog` < 0; the fd or an error.
inline result<int> bound_socket(const socket_address& a, bool reuseport, int backlog) noexcept {
  const int fd = ::socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::error_code(errno, std::system_category());
  const int one = 1;
  int rc = ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (rc == 0 && reuseport) rc = ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (rc == 0 && a.ss.ss_family == AF_INET6) rc = ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (rc != 0 || ::bind(fd, a.get(), a.len) != 0 || (backlog >= 0 && ::listen(fd, backlog) != 0)) {
    const int err = errno;
    ::close(fd);
    return std::error_code(err, std::system_category());
  }
  return fd;
}

/// Fails with address_in_use when any socket holds `a`'s port. SO_REUSEPORT lets every
/// socket of the same user join a port, so without this check a second copy of a
/// server would silently take half of the first one's connections.
[[nodiscard]] inline std::error_code port_is_free(const socket_address& a) noexcept {
  auto probe = bound_socket(a, false, -1);
  if (!probe) return probe.error();
  ::close(*probe);
  return {};
}

inline std::uint16_t local_port(int fd) noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  return ntohs(ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                       : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

/// What a group reaches inside its servers (friend of basic_server).
struct group_access {
  /// True for a server whose accepts a group can balance (both engines' basic_server; a
  /// server type without the hooks is given SO_REUSEPORT sockets).
  template <class S>
  static constexpr bool can_balance = requires(S& s) {
    s.group_hold_accepts(true);
    s.group_observe_count(nullptr, nullptr);
  };
  template <class S>
  static void observe_count(S& s, void (*f)(void*, std::size_t) noexcept, void* arg) noexcept {
    s.group_observe_count(f, arg);
  }
  template <class S>
  static void hold_accepts(S& s, bool on) noexcept {
    s.group_hold_accepts(on);
  }
};

/// accept_mode::balanced: who may accept. Every loop reports its open connections (on its
/// own thread, at each accept and close); a loop more than `slack` connections above the
/// least loaded one holds its listener, the others accept. One mutex orders the reports,
/// so every decision is taken on exact counts: the least loaded loop never wants to hold,
/// and a loop whose wish changed because of another loop's report is signalled (its
/// eventfd) and applies it on its own thread. The mutex is taken per accept and per close,
/// never per request.
class accept_balance {
 public:
  static constexpr std::size_t slack = 1;

  explicit accept_balance(unsigned loops) : slots_(new slot[loops]), n_(loops) {}

  /// Loop `i`'s eventfd, signalled when its wish changes (the group's worker owns it).
  void set_wake(unsigned i, wake_fd* w) noexcept { slots_[i].wake = w; }

  /// Loop `i`'s thread: it has `open` connections now (or, with no count, re-evaluate).
  /// Returns whether loop `i` must hold its listener.
  bool report(unsigned i, std::size_t open) noexcept {
    const scoped_lock lock(mutex_);
    slots_[i].open = open;
    return decide(i);
  }
  bool reevaluate(unsigned i) noexcept {
    const scoped_lock lock(mutex_);
    return decide(i);
  }

 private:
  struct slot {
    std::size_t open = 0;
    bool held = false;  // what the loop applied last
    wake_fd* wake = nullptr;
  };

  bool decide(unsigned i) noexcept {
    std::size_t least = slots_[0].open;
    for (unsigned j = 1; j < n_; ++j) least = slots_[j].open < least ? slots_[j].open : least;
    for (unsigned j = 0; j < n_; ++j) {
      const bool want = slots_[j].open > least + slack;
      if (j == i) {
        slots_[j].held = want;
      } else if (want != slots_[j].held && slots_[j].wake) {
        slots_[j].wake->signal();  // it decides again, on its own thread
      }
    }
    return slots_[i].held;
  }

  process_mutex mutex_;
  unique_array<slot> slots_;
  unsigned n_;
};

}  // namespace detail

/// N servers of type `Server` on N loops and threads, serving one port. See the file
/// comment. Not movable (the threads point at it). A group starts once; its destructor
/// stops every loop and joins every thread.
template <class Server = server>
class basic_server_group {
 public:
  /// The server each loop runs; the setup callable receives a `server_type&`.
  using server_type = Server;

  /// Prepares `options.threads` loops (nothing runs until start()). Throws
  /// std::system_error when the kernel refuses the per-loop eventfds.
  explicit basic_server_group(group_options options = {}) : options_(options) {
    if (options_.threads == 0) {
      const unsigned cores = detail::thread::hardware_concurrency();
      options_.threads = cores > 1 ? cores : 1;
    }
    workers_ = detail::make_array<worker>(options_.threads);
  }
  basic_server_group(const basic_server_group&) = delete;
  basic_server_group& operator=(const basic_server_group&) = delete;
  ~basic_server_group() {
    stop();
    join();
  }

  /// Listens on `address`:`port` (0 picks a free port, shared by all) as
  /// group_options::accept says: one socket that every loop watches (balanced), or one
  /// SO_REUSEPORT socket per loop. Starts the threads, calls `setup` on each loop's
  /// thread, and returns the port once every loop is set up and serving.
  ///
  /// Errors, with nothing left running: errc::invalid_address, the system's reason for a
  /// socket that cannot be bound (std::errc::address_in_use when a process listens on
  /// the port, permission_denied...), errc::invalid_argument when
  /// the group was started before, errc::signals_in_use (signal_drain, while another
  /// loop watches signals), an error_code `setup` returned (by itself or in a
  /// result<T>, whose value is otherwise the loop's state). An exception `setup` throws
  /// on a loop's thread is rethrown here.
  template <class Setup>
    requires detail::group_setup<Setup, Server>
  result<std::uint16_t> start(cstring_view address, std::uint16_t port, Setup setup) {
    if (started_) return errc::invalid_argument;
    auto where = detail::socket_address::parse(address.view(), port);
    if (!where) return where.error();
    std::vector<int> fds;
    if constexpr (!detail::group_access::can_balance<Server>) options_.accept = accept_mode::reuseport;
    if (options_.accept == accept_mode::balanced) {
      // One socket (no SO_REUSEPORT: a process already on the port makes bind fail), a
      // descriptor of it for every loop.
      auto fd = detail::bound_socket(*where, false, options_.backlog);
      if (!fd) return fd.error();
      fds.push_back(*fd);
      for (unsigned i = 1; i < options_.threads; ++i) {
        const int d = ::fcntl(*fd, F_DUPFD_CLOEXEC, 0);
        if (d < 0) {
          const int err = errno;
          for (int f : fds) ::close(f);
          return std::error_code(err, std::system_category());
        }
        fds.push_back(d);
      }
      port = detail::local_port(*fd);
      if (options_.threads > 1) {
        balance_ = detail::make_owner<detail::accept_balance>(options_.threads);
        for (unsigned i = 0; i < options_.threads; ++i) balance_->set_wake(i, &workers_[i].balance);
      }
    }
    if (options_.accept == accept_mode::reuseport && port != 0)
      if (auto ec = detail::port_is_free(*where)) return ec;
    for (unsigned i = 0; options_.accept == accept_mode::reuseport && i < options_.threads; ++i) {
      auto fd = detail::bound_socket(*where, true, options_.backlog);
      if (!fd) {
        for (int f : fds) ::close(f);
        return fd.error();
      }
      if (port == 0) {  // the others join the port the first one got
        port = detail::local_port(*fd);
        where = detail::socket_address::parse(address.view(), port);
      }
      fds.push_back(*fd);
    }
    for (unsigned i = 0; i < options_.threads; ++i) workers_[i].listen_fd = fds[i];
    if (auto ec = launch(std::move(setup))) return ec;
    port_ = port;
    return port;
  }

  /// Starts the threads and calls `setup` on each loop's thread without opening any
  /// socket: each setup listens where it wants (srv.bind(...), srv.accept(fd)).
  /// Errors as above.
  template <class Setup>
    requires detail::group_setup<Setup, Server>
  [[nodiscard]] std::error_code start(Setup setup) {
    if (started_) return make_error_code(errc::invalid_argument);
    return launch(std::move(setup));
  }

  /// Makes every loop return from run(); each thread then destroys what its setup
  /// returned, its server (close callbacks run with close_reason::server_shutdown, on
  /// that loop's thread) and its loop. Any thread, a signal handler included; idempotent.
  void stop() noexcept {
    stopping_.store(true, detail::order::release);
    for (unsigned i = 0; i < options_.threads; ++i) workers_[i].stop.signal();
  }

  /// Drains every loop's server (basic_server::drain: held requests answered, streams
  /// ended, idle connections closed, within `deadline`); each loop returns once its
  /// server drained, so join() returns once all did. Any thread (it only writes to each
  /// loop's eventfd; the drain runs on the loop's own thread). A later call only brings
  /// the deadline forward; stop() still stops every loop at once.
  /// Groups given to also_drain() drain too, with the same deadline.
  template <class Rep, class Period>
  void drain(std::chrono::duration<Rep, Period> deadline) noexcept {
    long long ms = std::chrono::ceil<std::chrono::milliseconds>(deadline).count();
    if (ms < 0) ms = 0;
    long long current = drain_ms_.load(detail::order::acquire);
    bool changed = false;
    while (current < 0 || ms < current) {
      if (drain_ms_.compare_exchange_weak(current, ms, detail::order::acq_rel)) {
        changed = true;
        break;
      }
    }
    for (unsigned i = 0; i < options_.threads; ++i) workers_[i].stop.signal();
    // Only a call that moved the deadline passes it on: groups that drain each other
    // (a.also_drain(b), b.also_drain(a)) stop there.
    if (changed) {
      const unsigned n = companion_count_.load(detail::order::acquire);
      for (unsigned i = 0; i < n; ++i) companions_[i].drain(companions_[i].group, ms);
    }
  }

  /// Makes `other` drain whenever this group drains (drain(), or SIGTERM and SIGINT
  /// through group_options::signal_drain), with the same deadline. One loop per process
  /// may watch signals, so this is how one SIGTERM drains several groups (HTTP and HTTPS
  /// on different ports, say): give signal_drain to one group, and it the others. Call
  /// it before start(). `other` must outlive this group: declare it first. Errors:
  /// errc::invalid_argument after start(), for the group itself, or past 8 groups.
  template <class S>
  [[nodiscard]] std::error_code also_drain(basic_server_group<S>& other) noexcept {
    const unsigned n = companion_count_.load(detail::order::relaxed);
    if (started_ || static_cast<void*>(&other) == static_cast<void*>(this) || n == max_companions)
      return make_error_code(errc::invalid_argument);
    companions_[n] = {&other, [](void* g, long long ms) noexcept {
                        static_cast<basic_server_group<S>*>(g)->drain(std::chrono::milliseconds{ms});
                      }};
    // Published after the entry: another group that drains this one may be running.
    companion_count_.store(n + 1, detail::order::release);
    return {};
  }
  /// True once drain() was called.
  bool draining() const noexcept { return drain_ms_.load(detail::order::acquire) >= 0; }

  /// Waits until every loop thread has finished (after stop()). From the thread that
  /// started the group, not from a loop's thread.
  void join() {
    for (unsigned i = 0; i < options_.threads; ++i)
      if (workers_[i].thread.joinable()) workers_[i].thread.join();
  }

  /// Loops in the group.
  unsigned size() const noexcept { return options_.threads; }
  /// The port start(address, port, setup) listens on (0 before, or without one).
  std::uint16_t port() const noexcept { return port_; }
  /// True once stop() was called.
  bool stopping() const noexcept { return stopping_.load(detail::order::acquire); }

 private:
  struct worker {
    detail::wake_fd stop;     // stop() signals it; the loop's thread watches it
    detail::wake_fd balance;  // accept_mode::balanced: the loop's wish to accept changed
    int listen_fd = -1;    // until the loop's server adopts it
    detail::thread thread;
  };
  enum class go_state { waiting, run, abort };

  template <class Setup>
  [[nodiscard]] std::error_code launch(Setup setup) {
    started_ = true;
    unsigned launched = 0;
    try {
      for (; launched < options_.threads; ++launched)
        workers_[launched].thread = detail::thread([this, setup, i = launched]() mutable noexcept { run_loop(setup, i); });
    } catch (...) {
      finish_start(go_state::abort, launched);
      throw;
    }
    mutex_.lock();
    cv_.wait(mutex_, [&] { return ready_ == options_.threads; });
    const bool ok = !error_ && !exception_;
    mutex_.unlock();
    finish_start(ok ? go_state::run : go_state::abort, options_.threads);
    if (exception_) std::rethrow_exception(exception_);
    return error_;
  }

  void finish_start(go_state state, unsigned launched) {
    {
      const detail::scoped_lock lock(mutex_);
      go_ = state;
    }
    cv_.notify_all();
    if (state == go_state::run) return;
    stop();
    for (unsigned i = 0; i < launched; ++i)
      if (workers_[i].thread.joinable()) workers_[i].thread.join();
    for (unsigned i = 0; i < options_.threads; ++i)
      if (workers_[i].listen_fd >= 0) ::close(std::exchange(workers_[i].listen_fd, -1));
  }

  /// Reports this loop's setup; true if the group then says run.
  bool ready(std::error_code ec, std::exception_ptr ex) {
    const detail::scoped_lock lock(mutex_);
    if (ec && !error_) error_ = ec;
    if (ex && !exception_) exception_ = ex;
    ++ready_;
    cv_.notify_all();
    cv_.wait(mutex_, [&] { return go_ != go_state::waiting; });
    return go_ == go_state::run;
  }

  /// What a loop's wake-up event needs: stop() or drain() was called.
  struct loop_context {
    basic_server_group* group;
    detail::wake_fd* wake;
    event_loop* loop;
    Server* server;
  };

  /// accept_mode::balanced: what a loop's observer and wake-up event need.
  struct balance_context {
    detail::accept_balance* balance;
    detail::wake_fd* wake;
    Server* server;
    unsigned index;
  };
  // The loop's count of open connections changed (an accept, a close).
  static void on_count(void* arg, std::size_t open) noexcept {
    auto* ctx = static_cast<balance_context*>(arg);
    detail::group_access::hold_accepts(*ctx->server, ctx->balance->report(ctx->index, open));
  }
  // Another loop's report changed what this one should do.
  static void on_balance(evutil_socket_t, short, void* arg) noexcept {
    auto* ctx = static_cast<balance_context*>(arg);
    ctx->wake->consume();
    detail::group_access::hold_accepts(*ctx->server, ctx->balance->reevaluate(ctx->index));
  }

  static void on_stop(evutil_socket_t, short, void* arg) noexcept {
    auto* ctx = static_cast<loop_context*>(arg);
    ctx->wake->consume();
    if (ctx->group->stopping()) return ctx->loop->stop();
    const long long ms = ctx->group->drain_ms_.load(detail::order::acquire);
    if (ms >= 0) (void)ctx->server->drain(std::chrono::milliseconds{ms});
  }

  template <class Setup>
  void run_loop(Setup& setup, unsigned index) noexcept {
    worker& w = workers_[index];
    char name[16];
    std::snprintf(name, sizeof name, "tether-loop-%u", index);
    ::pthread_setname_np(::pthread_self(), name);
    bool reported = false;
    try {
      event_loop loop{options_.loop};
      Server srv{loop};
      loop_context stop_ctx{this, &w.stop, &loop, &srv};
      std::optional<drain_on_signals<basic_server_group>> signals;
      if (index == 0 && options_.signal_drain.count() > 0) {
        try {
          signals.emplace(loop, *this, options_.signal_drain);
        } catch (const std::system_error& e) {  // errc::signals_in_use: start() returns it
          reported = true;
          (void)ready(e.code(), nullptr);
          return;
        }
      }
      detail::unique_event stop_ev{event_new(loop.native(), w.stop.fd(), EV_READ | EV_PERSIST, &on_stop, &stop_ctx)};
      if (!stop_ev || event_add(stop_ev.get(), nullptr) != 0) throw std::bad_alloc{};
      // accept_mode::balanced: the server reports its open connections; destroyed (and
      // the observer removed) before the server.
      balance_context balance_ctx{balance_.get(), &w.balance, &srv, index};
      detail::unique_event balance_ev;
      struct unobserve {
        Server* srv;
        ~unobserve() {
          if constexpr (detail::group_access::can_balance<Server>)
            if (srv) detail::group_access::observe_count(*srv, nullptr, nullptr);
        }
      } observing{nullptr};
      if constexpr (detail::group_access::can_balance<Server>) {
        if (balance_) {
          balance_ev.reset(event_new(loop.native(), w.balance.fd(), EV_READ | EV_PERSIST, &on_balance, &balance_ctx));
          if (!balance_ev || event_add(balance_ev.get(), nullptr) != 0) throw std::bad_alloc{};
          detail::group_access::observe_count(srv, &on_count, &balance_ctx);
          observing.srv = &srv;
        }
      } else {
        (void)balance_ctx;
      }
      using state_t = detail::setup_result_t<Setup, Server>;
      auto serve = [&](std::error_code ec) {
        if (!ec && w.listen_fd >= 0) {
          auto port = srv.accept(w.listen_fd);
          if (port) w.listen_fd = -1;  // the server owns it now
          else ec = port.error();
        }
        reported = true;
        if (!ready(ec, nullptr)) return;
        if (!stopping()) loop.run();
      };
      if constexpr (std::is_void_v<state_t>) {
        detail::call_setup(setup, srv, loop, index);
        serve({});
      } else if constexpr (std::is_convertible_v<state_t, std::error_code>) {
        // std::error_code, or what converts to one (a route_error: srv.route(...)).
        serve(std::error_code(detail::call_setup(setup, srv, loop, index)));
      } else if constexpr (detail::is_result<std::remove_cvref_t<state_t>>) {
        // State that can fail to be made: its error fails start(), its value is kept as
        // below (inside the result, destroyed on this thread before the server). A
        // result without a value fails even if its error is zero.
        std::remove_cvref_t<state_t> made = detail::call_setup(setup, srv, loop, index);
        serve(made ? std::error_code{} : made.error() ? made.error() : make_error_code(errc::invalid_argument));
      } else {
        // Kept for the loop's lifetime, destroyed on this thread before the server.
        std::remove_cvref_t<state_t> state = detail::call_setup(setup, srv, loop, index);
        serve({});
      }
    } catch (...) {
      if (!reported) (void)ready({}, std::current_exception());
      else detail::report_exception("a server_group loop's teardown");
    }
  }

  group_options options_;
  detail::unique_array<worker> workers_;
  detail::atomic_value<bool> stopping_{false};
  detail::atomic_value<long long> drain_ms_{-1};  // drain()'s deadline; -1 until it is called
  detail::unique_owner<detail::accept_balance> balance_;  // accept_mode::balanced, 2 loops or more
  // also_drain(): written before start(), read by drain() on any thread after.
  struct companion {
    void* group;
    void (*drain)(void*, long long) noexcept;
  };
  static constexpr unsigned max_companions = 8;
  companion companions_[max_companions]{};
  detail::atomic_value<unsigned> companion_count_{0u};
  bool started_ = false;
  std::uint16_t port_ = 0;

  detail::process_mutex mutex_;
  detail::condition cv_;
  unsigned ready_ = 0;
  go_state go_ = go_state::waiting;
  std::error_code error_;
  std::exception_ptr exception_;
};

/// A group of tether::server.
using server_group = basic_server_group<>;

TETHER_END_NAMESPACE
