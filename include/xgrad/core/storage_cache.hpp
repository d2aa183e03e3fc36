#pragma once
// Reuse of large CPU tensor blocks. A training step frees and allocates the same large
// buffers (activations, im2col columns, gradients) every step; handing them back to the C
// library lets it return the pages to the kernel, and the next step pays a page fault and a
// zero-fill per 4 KiB page. The cache keeps freed blocks of at least min_bytes, by size class
// (the size rounded up to the next eighth of a power of two), up to a byte limit, and hands
// them out again. Blocks are 64-byte aligned like every tensor block.
//
// The limit: set_storage_cache_bytes(n) (0 disables the cache and frees what it holds), or
// $XGRAD_STORAGE_CACHE_MB at start-up; 256 MiB by default, 0 under AddressSanitizer (so that it
// still sees every use after free).
#include <cstddef>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "config.hpp"

namespace xgrad {

namespace detail {

class storage_cache {
public:
    /// Blocks below this size go straight to the C library (its own free lists are fast there).
    static constexpr std::size_t min_bytes = std::size_t(64) << 10;

    /// The process's cache. Never destroyed: tensors held by other static objects may be freed
    /// after main returns.
    static storage_cache& instance() {
        static storage_cache* c = new storage_cache;
        return *c;
    }

    /// The size class of a request: bytes rounded up to a multiple of alignment, and, from
    /// min_bytes up, to the next eighth of its power of two (at most 12.5% more).
    static std::size_t size_class(std::size_t bytes) {
        bytes = (bytes + alignment - 1) / alignment * alignment;
        if (bytes < min_bytes) return bytes;
        std::size_t p = 1;
        while (p <= bytes / 2) p *= 2;  // the largest power of two <= bytes
        const std::size_t step = p / 8;
        return (bytes + step - 1) / step * step;
    }

    /// A block of size_class(bytes) bytes (bytes already a size class).
    void* get(std::size_t bytes) {
        if (bytes >= min_bytes) {
            std::lock_guard<std::mutex> lock(m_);
            auto it = free_.find(bytes);
            if (it != free_.end() && !it->second.empty()) {
                void* p = it->second.back();
                it->second.pop_back();
                held_ -= bytes;
                ++hits_;
                return p;
            }
        }
        return ::operator new(bytes, std::align_val_t{alignment});
    }

    /// Takes a block back: kept while the cache has room, freed otherwise.
    void put(void* p, std::size_t bytes) {
        if (bytes >= min_bytes) {
            std::lock_guard<std::mutex> lock(m_);
            if (held_ + bytes <= limit_) {
                free_[bytes].push_back(p);
                held_ += bytes;
                return;
            }
        }
        ::operator delete(p, std::align_val_t{alignment});
    }

    /// Sets the limit; blocks beyond it are freed now.
    void set_limit(std::size_t bytes) {
        std::lock_guard<std::mutex> lock(m_);
        limit_ = bytes;
        for (auto it = free_.begin(); it != free_.end() && held_ > limit_; ++it)
            while (!it->second.empty() && held_ > limit_) {
                ::operator delete(it->second.back(), std::align_val_t{alignment});
                held_ -= it->first;
                it->second.pop_back();
            }
    }
    std::size_t limit() const {
        std::lock_guard<std::mutex> lock(m_);
        return limit_;
    }
    /// Bytes held for reuse now.
    std::size_t held() const {
        std::lock_guard<std::mutex> lock(m_);
        return held_;
    }
    /// Requests served from the cache so far.
    std::size_t hits() const {
        std::lock_guard<std::mutex> lock(m_);
        return hits_;
    }

    storage_cache(const storage_cache&) = delete;
    storage_cache& operator=(const storage_cache&) = delete;

private:
    storage_cache() : limit_(default_limit()) {}

    static std::size_t default_limit() {
        if (const char* env = std::getenv("XGRAD_STORAGE_CACHE_MB")) {
            char* end = nullptr;
            const unsigned long long mb = std::strtoull(env, &end, 10);
            if (end != env && *end == '\0') return static_cast<std::size_t>(mb) << 20;
        }
#if defined(__SANITIZE_ADDRESS__)
        return 0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
        return 0;
#endif
#endif
        return std::size_t(256) << 20;
    }

    mutable std::mutex m_;
    std::map<std::size_t, std::vector<void*>> free_;
    std::size_t held_ = 0, limit_ = 0, hits_ = 0;
};

}  // namespace detail

/// Bytes of freed CPU tensor blocks kept for reuse at most (0: none; see core/storage_cache.hpp).
inline void set_storage_cache_bytes(std::size_t bytes) { detail::storage_cache::instance().set_limit(bytes); }
inline std::size_t storage_cache_bytes() { return detail::storage_cache::instance().limit(); }

}  // namespace xgrad
