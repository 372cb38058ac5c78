// tether/config.hpp - toolchain and libevent checks, the versioned namespace.
/// @file
/// Toolchain and libevent version checks, and the versioned namespace every tether name
/// lives in (tether::v0, written tether::).
#pragma once

#if !defined(__cplusplus) || __cplusplus < 202002L
#  error "tether needs C++20: compile with -std=c++20 (Meson: default_options : ['cpp_std=c++20'])"
#endif

#include <event2/event.h>

#if !defined(LIBEVENT_VERSION_NUMBER) || LIBEVENT_VERSION_NUMBER < 0x02010800
#  error "tether needs libevent >= 2.1.8 (Debian: apt-get install libevent-dev)"
#endif

/// tether's major version: changes that break source or ABI compatibility.
#define TETHER_VERSION_MAJOR 0
/// tether's minor version: additions.
#define TETHER_VERSION_MINOR 1
/// tether's patch version: fixes.
#define TETHER_VERSION_PATCH 0

// Every public name lives in tether::v0, so two incompatible versions linked into one
// program fail to link instead of silently mixing layouts.
/// Opens tether's namespace (`namespace tether { inline namespace v0 {`) in tether's own
/// headers; application code writes `tether::` and never needs it.
#define TETHER_BEGIN_NAMESPACE \
  namespace tether {           \
  inline namespace v0 {
/// Closes what TETHER_BEGIN_NAMESPACE opened.
#define TETHER_END_NAMESPACE \
  }                          \
  }

TETHER_BEGIN_NAMESPACE
/// The library version as "major.minor.patch".
inline constexpr const char* version_string = "0.1.0";
TETHER_END_NAMESPACE
