// tether/detail/iterator_tags.hpp - std::forward_iterator_tag and its kin without
// <iterator>.
//
// tether's iterators name their category; <iterator> itself (stream iterators, ranges'
// access customisation points) costs a hello server more compile time than the tags are
// worth (docs/performance.md). libstdc++ declares the tags in
// <bits/stl_iterator_base_types.h>, which <iterator> and <string> include; other standard
// libraries get <iterator>.
#pragma once

#include <version>  // names the standard library (__GLIBCXX__) and nothing else

#if defined(__GLIBCXX__) && __has_include(<bits/stl_iterator_base_types.h>)
#include <bits/stl_iterator_base_types.h>
#else
#include <iterator>
#endif
