// tether/tether.hpp - everything tether offers, in one include.
#pragma once

#include <tether/buffer.hpp>
#include <tether/buffer_policy.hpp>
#include <tether/bufferevent.hpp>
#include <tether/bytes.hpp>
#include <tether/close_callback.hpp>
#include <tether/close_policy.hpp>
#include <tether/close_reason.hpp>
#include <tether/config.hpp>
#include <tether/cstring_view.hpp>
#include <tether/error.hpp>
#include <tether/file.hpp>
#include <tether/event_loop.hpp>
#include <tether/handle.hpp>
#include <tether/headers.hpp>
#include <tether/inplace_function.hpp>
#include <tether/method.hpp>
#include <tether/reply_hook.hpp>
#include <tether/request.hpp>
#include <tether/server.hpp>
#include <tether/timer.hpp>
