// The headers this consumer precompiles (docs/install.md, "Faster builds"): the two that a
// hello server includes. Meson compiles this file to a .gch once and puts
// "-include consumer_pch.hpp" before main.cpp; main.cpp still includes them itself.
#include <tether/event_loop.hpp>
#include <tether/server.hpp>
