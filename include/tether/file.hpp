// tether/file.hpp - a file opened once and served, whole or in ranges, by sendfile.
//
// A `file` holds a libevent file segment (evbuffer_file_segment): libevent writes it to
// sockets with sendfile(2), so its bytes never enter the process's heap. Every range
// queued on a connection takes a reference on the segment, so the file stays open until
// the last reply that uses it has been written, even if the `file` object is gone.
// Queue it with `file_buffer`; see buffer_policy.hpp.
/// @file
/// tether::file and tether::file_range: a file opened once and served, whole or in ranges,
/// with sendfile(2) under tether::file_buffer. See docs/buffers/file.md.
#pragma once

#include <tether/config.hpp>
#include <tether/cstring_view.hpp>
#include <tether/error.hpp>

#include <event2/buffer.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <utility>

TETHER_BEGIN_NAMESPACE

class file;

/// A range of a file, to be queued by a buffer policy that can send files.
struct file_range {
  /// The libevent segment of the file; null for a range of an empty `file`.
  evbuffer_file_segment* segment;
  /// The file's descriptor, owned by the segment (do not close it).
  int fd;  // the segment's descriptor (owned by the segment)
  /// The first byte of the range, from the start of the file.
  std::uint64_t offset;
  /// The number of bytes in the range.
  std::uint64_t length;
};

/// An open file, shared by the replies that send it.
class file {
 public:
  file() noexcept = default;

  /// Opens `path` read-only. Errors: the system's reason (no such file, permission).
  static result<file> open(cstring_view path) noexcept {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::error_code(errno, std::system_category());
    return adopt(fd);
  }
  /// Takes ownership of an open, regular, readable `fd`.
  static result<file> adopt(int fd) noexcept {
    struct stat st{};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return errc::file_error;
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    // EVBUF_FS_CLOSE_ON_FREE: libevent closes fd when the last reference goes.
    evbuffer_file_segment* seg = evbuffer_file_segment_new(fd, 0, static_cast<ev_off_t>(size), EVBUF_FS_CLOSE_ON_FREE);
    if (!seg) {
      ::close(fd);
      return errc::libevent_failure;
    }
    return file(seg, fd, size);
  }

  /// Takes over `o`'s file; `o` becomes empty.
  file(file&& o) noexcept : seg_(std::exchange(o.seg_, nullptr)), fd_(std::exchange(o.fd_, -1)), size_(o.size_) {}
  /// Exchanges files with `o` (whose destructor then releases the one this held).
  file& operator=(file&& o) noexcept {
    std::swap(seg_, o.seg_);
    std::swap(fd_, o.fd_);
    std::swap(size_, o.size_);
    return *this;
  }
  file(const file&) = delete;
  file& operator=(const file&) = delete;
  ~file() {
    if (seg_) evbuffer_file_segment_free(seg_);
  }

  /// The file's size in bytes when it was opened.
  std::uint64_t size() const noexcept { return size_; }
  /// False for a default-constructed or moved-from file.
  explicit operator bool() const noexcept { return seg_ != nullptr; }

  /// The whole file.
  file_range all() const noexcept { return {seg_, fd_, 0, size_}; }
  /// Bytes [offset, offset + length), clamped to the file's size.
  file_range range(std::uint64_t offset, std::uint64_t length) const noexcept {
    if (offset > size_) offset = size_;
    if (length > size_ - offset) length = size_ - offset;
    return {seg_, fd_, offset, length};
  }

 private:
  file(evbuffer_file_segment* s, int fd, std::uint64_t size) noexcept : seg_(s), fd_(fd), size_(size) {}
  evbuffer_file_segment* seg_ = nullptr;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

TETHER_END_NAMESPACE
