// SMCP_UNDER_SANITIZER: 1 when built with ASan or TSan, by gcc (__SANITIZE_ADDRESS__) or clang 14
// (__has_feature(address_sanitizer)); tests that measure resident memory skip then.
#pragma once

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SMCP_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SMCP_UNDER_SANITIZER 1
#endif
#endif
#ifndef SMCP_UNDER_SANITIZER
#define SMCP_UNDER_SANITIZER 0
#endif
