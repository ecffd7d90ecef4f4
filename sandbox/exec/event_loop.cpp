#include "sandbox/exec/event_loop.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <utility>

namespace smcp::exec {

namespace asio = boost::asio;

struct EventLoop::Impl {
  asio::io_context io{1};
  // Keeps run() going while there is nothing to wait for (a loop thread waits for post()).
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
};

EventLoop::EventLoop() : m_impl(std::make_unique<Impl>()) {}
EventLoop::~EventLoop() = default;

void EventLoop::run() {
  m_impl->io.run();
}

std::size_t EventLoop::run_until(Clock::time_point deadline) {
  if (m_impl->io.stopped()) {
    return 0;
  }
  std::size_t n = m_impl->io.run_one_until(deadline);
  if (n > 0) {
    n += m_impl->io.poll(); // and whatever else became ready meanwhile
  }
  return n;
}

void EventLoop::stop() {
  m_impl->io.stop();
}

bool EventLoop::stopped() const {
  return m_impl->io.stopped();
}

void EventLoop::post(std::function<void()> fn) {
  asio::post(m_impl->io, std::move(fn));
}

// ---- Watch ----

struct EventLoop::Watch::Impl {
  Impl(asio::io_context& io, int fd) : descriptor(io, fd) {}
  asio::posix::stream_descriptor descriptor;
  bool reading = false;
  bool writing = false;
};

EventLoop::Watch::Watch(EventLoop& loop, int fd) : m_impl(std::make_shared<Impl>(loop.m_impl->io, fd)) {}

EventLoop::Watch::~Watch() {
  boost::system::error_code ignored;
  m_impl->descriptor.cancel(ignored);
  m_impl->descriptor.release(); // not ours to close
}

int EventLoop::Watch::fd() const {
  return const_cast<asio::posix::stream_descriptor&>(m_impl->descriptor).native_handle();
}

namespace {

// Arms one wait of `descriptor` in one direction; `waiting` is the Watch's flag for it.
template <typename ImplPtr>
void arm_wait(const ImplPtr& impl, bool ImplPtr::element_type::*waiting, asio::posix::stream_descriptor::wait_type type,
              std::function<void(bool ok)> fn) {
  if ((*impl).*waiting) {
    return;
  }
  (*impl).*waiting = true;
  impl->descriptor.async_wait(
      type, [weak = std::weak_ptr(impl), waiting, fn = std::move(fn)](const boost::system::error_code& ec) {
        auto alive = weak.lock();
        if (!alive || ec == asio::error::operation_aborted) {
          return; // cancelled, or the Watch is gone
        }
        (*alive).*waiting = false;
        fn(!ec);
      });
}

} // namespace

void EventLoop::Watch::on_readable(std::function<void(bool ok)> fn) {
  arm_wait(m_impl, &Impl::reading, asio::posix::stream_descriptor::wait_read, std::move(fn));
}

void EventLoop::Watch::on_writable(std::function<void(bool ok)> fn) {
  arm_wait(m_impl, &Impl::writing, asio::posix::stream_descriptor::wait_write, std::move(fn));
}

bool EventLoop::Watch::waiting_readable() const {
  return m_impl->reading;
}

bool EventLoop::Watch::waiting_writable() const {
  return m_impl->writing;
}

void EventLoop::Watch::cancel() {
  boost::system::error_code ignored;
  m_impl->descriptor.cancel(ignored);
  m_impl->reading = false;
  m_impl->writing = false;
}

// ---- Timer ----

struct EventLoop::Timer::Impl {
  explicit Impl(asio::io_context& io) : timer(io) {}
  asio::steady_timer timer;
  bool pending = false;
  std::uint64_t generation = 0; // a replaced expiry's handler sees a newer generation and does nothing
};

EventLoop::Timer::Timer(EventLoop& loop) : m_impl(std::make_shared<Impl>(loop.m_impl->io)) {}

EventLoop::Timer::~Timer() {
  m_impl->timer.cancel();
}

void EventLoop::Timer::at(Clock::time_point when, std::function<void()> fn) {
  m_impl->timer.expires_at(when); // cancels a pending wait
  m_impl->pending = true;
  const std::uint64_t gen = ++m_impl->generation;
  m_impl->timer.async_wait(
      [weak = std::weak_ptr<Impl>(m_impl), gen, fn = std::move(fn)](const boost::system::error_code& ec) {
        auto impl = weak.lock();
        if (ec || !impl || gen != impl->generation) {
          return; // cancelled, replaced, or the Timer is gone
        }
        impl->pending = false;
        fn();
      });
}

void EventLoop::Timer::cancel() {
  ++m_impl->generation;
  m_impl->pending = false;
  m_impl->timer.cancel();
}

bool EventLoop::Timer::pending() const {
  return m_impl->pending;
}

} // namespace smcp::exec
