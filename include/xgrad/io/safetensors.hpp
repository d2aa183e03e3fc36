#pragma once
// safetensors files (https://github.com/huggingface/safetensors), the checkpoint format PyTorch
// users share: 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...}
// padded with spaces to a multiple of 8, then the tensors' raw little-endian bytes, back to back.
//
// Element types: F64, F32, I64, I32, I16, I8, U8 map to tensor<double, float, int64_t, ...>.
// F16 and BF16 are converted to tensor<float> on reading (and can be written from float tensors);
// BOOL is read as tensor<uint8_t> holding 0/1. Other dtypes are a format_error.
//
// Reading is safe on untrusted files: the header length is bounded, the JSON is validated
// strictly, and every tensor's offsets must fit its dtype and shape and tile the data area
// exactly (no gaps, overlaps or bytes outside the file). Violations throw format_error naming
// the file, the byte offset and the reason. Writing is atomic (see save_safetensors).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "detail/bytes.hpp"
#include "detail/json.hpp"

namespace xgrad::io {

/// What a safetensors tensor is held in after reading (and may be written from).
using safetensors_array = std::variant<tensor<float>, tensor<double>, tensor<std::int64_t>, tensor<std::int32_t>,
                                       tensor<std::int16_t>, tensor<std::int8_t>, tensor<std::uint8_t>>;

template <class T>
concept safetensors_element =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int64_t> ||
    std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int16_t> || std::is_same_v<T, std::int8_t> ||
    std::is_same_v<T, std::uint8_t>;

/// Largest header accepted (the reference implementation's limit).
inline constexpr std::size_t safetensors_max_header = 100'000'000;

/// One named tensor. `dtype` is the dtype stored in the file after reading ("F16" for a tensor
/// read into float, ...). For writing, leave it empty to store the tensor's own type, or ask for
/// "F16"/"BF16" (from a float tensor, rounded to nearest even) or "BOOL" (from a 0/1 uint8 tensor).
struct named_tensor {
    std::string name;
    safetensors_array value;
    std::string dtype;
};

/// A tensor's entry in a validated header: data_offsets [begin, end) are relative to the data area.
struct safetensors_info {
    std::string name;
    std::string dtype;
    shape_t shape;
    std::size_t begin = 0;
    std::size_t end = 0;
};

struct safetensors_header {
    std::vector<safetensors_info> tensors;  // in header order
    std::map<std::string, std::string> metadata;
    std::size_t data_start = 0;  // 8 + header length
};

/// The contents of a file: tensors in header order, the free-form `__metadata__` strings, and the
/// name used in error messages.
struct safetensors_file {
    std::vector<named_tensor> tensors;
    std::map<std::string, std::string> metadata;
    std::string source;

    const named_tensor* find(std::string_view name) const noexcept {
        for (const auto& t : tensors)
            if (t.name == name) return &t;
        return nullptr;
    }
    /// The tensor `name` converted to T (a shared handle when it already is a tensor<T>);
    /// index_error naming the file when there is none.
    template <class T>
    tensor<T> get(std::string_view name) const {
        const auto* t = find(name);
        if (!t) throw index_error(source + ": no tensor named '" + std::string(name) + "'");
        return std::visit(
            [](const auto& v) -> tensor<T> {
                if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(v)>::value_type, T>)
                    return v;
                else
                    return v.template astype<T>();
            },
            t->value);
    }
};

namespace detail {

struct st_dtype {
    const char* name;
    std::size_t size;
};
// the file dtypes xgrad reads, with their element sizes
inline constexpr st_dtype st_dtypes[] = {{"F32", 4}, {"F64", 8}, {"I64", 8}, {"I32", 4}, {"I16", 2},
                                         {"I8", 1},  {"U8", 1},  {"F16", 2}, {"BF16", 2}, {"BOOL", 1}};

inline const st_dtype* find_dtype(std::string_view name) noexcept {
    for (const auto& d : st_dtypes)
        if (name == d.name) return &d;
    return nullptr;
}

template <class T>
const char* st_natural_dtype() {
    if constexpr (std::is_same_v<T, float>) return "F32";
    else if constexpr (std::is_same_v<T, double>) return "F64";
    else if constexpr (std::is_same_v<T, std::int64_t>) return "I64";
    else if constexpr (std::is_same_v<T, std::int32_t>) return "I32";
    else if constexpr (std::is_same_v<T, std::int16_t>) return "I16";
    else if constexpr (std::is_same_v<T, std::int8_t>) return "I8";
    else return "U8";
}

// IEEE binary16 <-> binary32. Widening is exact; narrowing rounds to nearest even and
// overflows to infinity, as torch.half does.
inline float half_to_float(std::uint16_t h) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
    if (exp == 0) {
        const float v = std::ldexp(static_cast<float>(mant), -24);  // zero or subnormal
        return sign ? -v : v;
    }
    if (exp == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));
    return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

inline std::uint16_t float_to_half(float f) noexcept {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
    const std::uint32_t mag = x & 0x7FFFFFFFu;
    if (mag > 0x7F800000u) {
        // NaN: keep the payload's top bits (so half -> float -> half is exact), never make it infinity
        const std::uint32_t payload = (mag >> 13) & 0x3FFu;
        return static_cast<std::uint16_t>(sign | 0x7C00u | (payload ? payload : 0x200u));
    }
    if (mag < 0x38800000u) {
        // below 2^-14: a multiple of 2^-24; nearbyint rounds half to even in the default mode,
        // and a result of 1024 is exactly the smallest normal's encoding
        const float scaled = std::bit_cast<float>(mag) * 16777216.0f;
        return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(std::nearbyint(scaled)));
    }
    std::uint32_t m = mag - 0x38000000u;  // rebias the exponent from 127 to 15
    m += 0x0FFFu + ((m >> 13) & 1u);     // round to nearest even on the 13 dropped bits
    m >>= 13;
    if (m >= 0x7C00u) m = 0x7C00u;  // overflow (and infinity) to infinity
    return static_cast<std::uint16_t>(sign | m);
}

inline float bf16_to_float(std::uint16_t b) noexcept { return std::bit_cast<float>(std::uint32_t{b} << 16); }

inline std::uint16_t float_to_bf16(float f) noexcept {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) {
        // NaN: truncate (keeps bf16 -> float -> bf16 exact), never make it infinity
        const auto top = static_cast<std::uint16_t>(x >> 16);
        return (top & 0x7Fu) ? top : static_cast<std::uint16_t>(top | 0x40u);
    }
    return static_cast<std::uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

inline std::uint64_t read_u64_le(const std::byte* p) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 8; i-- > 0;) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
    return v;
}

/// Checks the 8-byte length prefix against the bound and the file size; returns N.
XGRAD_OUTLINE std::size_t st_header_length(std::span<const std::byte> prefix, std::uint64_t file_size, std::string_view name) {
    if (prefix.size() < 8)
        throw format_error(at_byte(name, 0,
                                   "truncated: a safetensors file starts with an 8-byte header length, the file has " +
                                       std::to_string(prefix.size()) + " bytes"));
    const std::uint64_t n = read_u64_le(prefix.data());
    if (n > safetensors_max_header)
        throw format_error(at_byte(name, 0, "header length " + std::to_string(n) + " exceeds the limit of " +
                                                std::to_string(safetensors_max_header) + " bytes"));
    if (n > file_size - 8)
        throw format_error(at_byte(name, 0, "truncated: header length " + std::to_string(n) + " but only " +
                                                std::to_string(file_size - 8) + " bytes follow"));
    if (n < 2) throw format_error(at_byte(name, 0, "header length " + std::to_string(n) + " is too short for a JSON object"));
    return static_cast<std::size_t>(n);
}
XGRAD_INSTANCE(std::size_t st_header_length(std::span<const std::byte> prefix, std::uint64_t file_size, std::string_view name))

/// Parses and validates the JSON header `text` (which starts at byte 8 of a file of
/// `file_size` bytes): schema, dtypes, shapes, and offsets that tile the data area exactly.
XGRAD_OUTLINE safetensors_header st_parse_header(std::string_view text, std::uint64_t file_size, std::string_view name) {
    constexpr std::size_t base = 8;
    json_parser parser(text, base, name);
    if (text.empty() || text.front() != '{') parser.fail(0, "the header must start with '{'");
    const json_value root = parser.parse();

    safetensors_header h;
    h.data_start = base + text.size();
    const std::uint64_t data_size = file_size - h.data_start;
    auto fail = [&](const json_value& at, const std::string& what) { parser.fail(at.offset, what); };

    for (std::size_t k = 0; k < root.keys.size(); ++k) {
        const std::string& key = root.keys[k];
        const json_value& v = root.items[k];
        if (key == "__metadata__") {
            if (!v.is(json_value::kind::object)) fail(v, "__metadata__ must be an object of strings");
            for (std::size_t m = 0; m < v.keys.size(); ++m) {
                if (!v.items[m].is(json_value::kind::string))
                    fail(v.items[m], "__metadata__ value for \"" + v.keys[m] + "\" must be a string, not " +
                                         json_kind_name(v.items[m].type));
                h.metadata.emplace(v.keys[m], v.items[m].text);
            }
            continue;
        }
        const std::string where = "tensor '" + key + "'";
        if (!v.is(json_value::kind::object)) fail(v, where + " must be an object");
        safetensors_info info;
        info.name = key;
        const json_value *dtype = nullptr, *shape = nullptr, *offsets = nullptr;
        for (std::size_t m = 0; m < v.keys.size(); ++m) {
            if (v.keys[m] == "dtype") dtype = &v.items[m];
            else if (v.keys[m] == "shape") shape = &v.items[m];
            else if (v.keys[m] == "data_offsets") offsets = &v.items[m];
            else fail(v.items[m], where + ": unknown field \"" + v.keys[m] + "\"");
        }
        if (!dtype || !shape || !offsets) fail(v, where + " lacks one of \"dtype\", \"shape\", \"data_offsets\"");

        if (!dtype->is(json_value::kind::string)) fail(*dtype, where + ": dtype must be a string");
        const st_dtype* dt = find_dtype(dtype->text);
        if (!dt)
            fail(*dtype, where + ": unsupported dtype '" + dtype->text +
                             "' (xgrad reads F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
        info.dtype = dt->name;

        if (!shape->is(json_value::kind::array)) fail(*shape, where + ": shape must be an array");
        // product with zero extents read as 1: bounds the strides of empty tensors too
        constexpr std::size_t max_span = std::size_t{1} << 48;
        std::size_t span = 1;
        for (const auto& d : shape->items) {
            std::uint64_t e = 0;
            if (!d.to_u64(e)) fail(d, where + ": shape entries must be non-negative integers");
            if (!checked_mul(span, e == 0 ? 1 : static_cast<std::size_t>(e), max_span, span))
                fail(*shape, where + ": shape has more than 2^48 elements");
            info.shape.push_back(static_cast<std::size_t>(e));
        }
        const std::size_t bytes = numel(info.shape) == 0 ? 0 : span * dt->size;

        if (!offsets->is(json_value::kind::array) || offsets->items.size() != 2)
            fail(*offsets, where + ": data_offsets must be an array [begin, end]");
        std::uint64_t b = 0, e = 0;
        if (!offsets->items[0].to_u64(b) || !offsets->items[1].to_u64(e))
            fail(*offsets, where + ": data_offsets must be non-negative integers");
        if (b > e) fail(*offsets, where + ": data_offsets begin " + std::to_string(b) + " > end " + std::to_string(e));
        if (e > data_size)
            fail(*offsets, where + ": data_offsets end " + std::to_string(e) + " is past the data area (" +
                               std::to_string(data_size) + " bytes)");
        if (e - b != bytes)
            fail(*offsets, where + ": data_offsets span " + std::to_string(e - b) + " bytes but " + info.dtype +
                               " shape " + to_string(info.shape) + " needs " + std::to_string(bytes));
        info.begin = static_cast<std::size_t>(b);
        info.end = static_cast<std::size_t>(e);
        h.tensors.push_back(std::move(info));
    }

    // the tensors must tile [0, data_size) exactly, in some order
    std::vector<const safetensors_info*> order;
    order.reserve(h.tensors.size());
    for (const auto& t : h.tensors) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    std::size_t pos = 0;
    for (const auto* t : order) {
        if (t->begin < pos)
            parser.fail(0, "tensor '" + t->name + "' (data_offsets [" + std::to_string(t->begin) + ", " +
                               std::to_string(t->end) + "]) overlaps the tensor before it");
        if (t->begin > pos)
            parser.fail(0, "gap in the data area: no tensor covers bytes [" + std::to_string(pos) + ", " +
                               std::to_string(t->begin) + ")");
        pos = t->end;
    }
    if (pos != data_size)
        throw format_error(at_byte(name, h.data_start + pos,
                                   std::to_string(data_size - pos) + " bytes after the last tensor belong to no tensor"));
    return h;
}
XGRAD_INSTANCE(safetensors_header st_parse_header(std::string_view text, std::uint64_t file_size, std::string_view name))

/// Builds the tensor for `info` from its raw bytes, converting F16/BF16/BOOL.
XGRAD_OUTLINE named_tensor st_decode(const safetensors_info& info, std::span<const std::byte> raw, std::size_t file_offset,
                              std::string_view name) {
    named_tensor out{info.name, tensor<float>{}, info.dtype};
    auto native = [&]<class T>(std::type_identity<T>) {
        auto t = tensor<T>::uninitialized(info.shape);
        copy_from(std::endian::little, raw.data(), t.data(), t.size());
        out.value = t;
    };
    const std::string_view d = info.dtype;
    if (d == "F32") native(std::type_identity<float>{});
    else if (d == "F64") native(std::type_identity<double>{});
    else if (d == "I64") native(std::type_identity<std::int64_t>{});
    else if (d == "I32") native(std::type_identity<std::int32_t>{});
    else if (d == "I16") native(std::type_identity<std::int16_t>{});
    else if (d == "I8") native(std::type_identity<std::int8_t>{});
    else if (d == "U8") native(std::type_identity<std::uint8_t>{});
    else if (d == "BOOL") {
        native(std::type_identity<std::uint8_t>{});
        const auto& t = std::get<tensor<std::uint8_t>>(out.value);
        for (std::size_t i = 0; i < t.size(); ++i)
            if (t.data()[i] > 1)
                throw format_error(at_byte(name, file_offset + i,
                                           "tensor '" + info.name + "': BOOL element holds " +
                                               std::to_string(t.data()[i]) + ", not 0 or 1"));
    } else {  // F16, BF16
        auto t = tensor<float>::uninitialized(info.shape);
        const bool half = d == "F16";
        for (std::size_t i = 0; i < t.size(); ++i) {
            const auto bits = static_cast<std::uint16_t>(static_cast<std::uint8_t>(raw[2 * i]) |
                                                         (static_cast<std::uint8_t>(raw[2 * i + 1]) << 8));
            t.data()[i] = half ? half_to_float(bits) : bf16_to_float(bits);
        }
        out.value = t;
    }
    return out;
}
XGRAD_INSTANCE(named_tensor st_decode(const safetensors_info& info, std::span<const std::byte> raw, std::size_t file_offset, std::string_view name))

/// Hook called after each chunk a save writes (argument: bytes written so far). Tests set it
/// to stop a process in the middle of a save; it is null otherwise.
inline void (*safetensors_write_hook)(std::size_t) = nullptr;

struct st_plan_entry {
    const named_tensor* src;
    const st_dtype* dtype;
    std::size_t bytes;
};

/// Validates what is to be written and orders it as the reference does: larger elements first
/// (stable), so every tensor starts at a multiple of its element size.
XGRAD_OUTLINE std::vector<st_plan_entry> st_plan(const std::vector<named_tensor>& tensors,
                                          const std::map<std::string, std::string>& metadata) {
    std::vector<st_plan_entry> plan;
    plan.reserve(tensors.size());
    std::vector<std::string_view> names;
    for (const auto& t : tensors) {
        if (t.name == "__metadata__") throw value_error("safetensors: '__metadata__' is reserved, not a tensor name");
        if (!valid_utf8(t.name)) throw value_error("safetensors: tensor name '" + t.name + "' is not valid UTF-8");
        names.push_back(t.name);
        const char* natural = std::visit(
            [](const auto& v) { return st_natural_dtype<typename std::remove_cvref_t<decltype(v)>::value_type>(); },
            t.value);
        const std::string_view want = t.dtype.empty() ? std::string_view(natural) : std::string_view(t.dtype);
        const bool ok = want == natural || ((want == "F16" || want == "BF16") && t.value.index() == 0) ||
                        (want == "BOOL" && std::holds_alternative<tensor<std::uint8_t>>(t.value));
        if (!ok)
            throw value_error("safetensors: tensor '" + t.name + "' holds " + natural + " and cannot be stored as '" +
                              std::string(want) + "'");
        const st_dtype* dt = find_dtype(want);
        const std::size_t n = std::visit([](const auto& v) { return v.size(); }, t.value);
        plan.push_back({&t, dt, n * dt->size});
    }
    std::sort(names.begin(), names.end());
    if (auto dup = std::adjacent_find(names.begin(), names.end()); dup != names.end())
        throw value_error("safetensors: tensor name '" + std::string(*dup) + "' appears twice");
    for (const auto& [k, v] : metadata)
        if (!valid_utf8(k) || !valid_utf8(v)) throw value_error("safetensors: metadata entry '" + k + "' is not valid UTF-8");
    std::stable_sort(plan.begin(), plan.end(), [](const auto& a, const auto& b) { return a.dtype->size > b.dtype->size; });
    return plan;
}
XGRAD_INSTANCE(std::vector<st_plan_entry> st_plan(const std::vector<named_tensor>& tensors, const std::map<std::string, std::string>& metadata))

/// The 8-byte length and the space-padded JSON header for `plan`.
XGRAD_OUTLINE std::string st_header_text(const std::vector<st_plan_entry>& plan,
                                  const std::map<std::string, std::string>& metadata) {
    std::string j = "{";
    if (!metadata.empty()) {
        j += "\"__metadata__\":{";
        bool first = true;
        for (const auto& [k, v] : metadata) {
            if (!first) j += ',';
            first = false;
            json_append_string(j, k);
            j += ':';
            json_append_string(j, v);
        }
        j += '}';
    }
    std::size_t offset = 0;
    for (const auto& p : plan) {
        if (j.size() > 1) j += ',';
        json_append_string(j, p.src->name);
        j += ":{\"dtype\":\"";
        j += p.dtype->name;
        j += "\",\"shape\":[";
        const auto& s = std::visit([](const auto& v) -> const shape_t& { return v.shape(); }, p.src->value);
        for (std::size_t d = 0; d < s.size(); ++d) {
            if (d) j += ',';
            j += std::to_string(s[d]);
        }
        j += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + p.bytes) + "]}";
        offset += p.bytes;
    }
    j += '}';
    j.append((8 - j.size() % 8) % 8, ' ');  // the data area starts 8-byte aligned
    std::string out(8, '\0');
    for (std::size_t i = 0; i < 8; ++i) out[i] = static_cast<char>((static_cast<std::uint64_t>(j.size()) >> (8 * i)) & 0xFF);
    return out + j;
}
XGRAD_INSTANCE(std::string st_header_text(const std::vector<st_plan_entry>& plan, const std::map<std::string, std::string>& metadata))

/// Streams a whole file through `sink(const std::byte*, std::size_t)` in chunks of at most 1 MiB.
template <class Sink>
void st_serialize(const std::vector<named_tensor>& tensors, const std::map<std::string, std::string>& metadata,
                  Sink&& sink) {
    const auto plan = st_plan(tensors, metadata);
    const std::string head = st_header_text(plan, metadata);
    sink(reinterpret_cast<const std::byte*>(head.data()), head.size());

    constexpr std::size_t chunk = std::size_t{1} << 20;
    std::vector<std::byte> buf;
    for (const auto& p : plan) {
        std::visit(
            [&](const auto& v) {
                using T = typename std::remove_cvref_t<decltype(v)>::value_type;
                const auto t = v.contiguous();
                const T* src = t.data();
                const std::size_t n = t.size();
                const std::string_view d = p.dtype->name;
                if (d == "BOOL") {
                    for (std::size_t i = 0; i < n; ++i)
                        if (src[i] > 1)
                            throw value_error("safetensors: tensor '" + p.src->name + "' stored as BOOL holds " +
                                              std::to_string(+src[i]) + " (only 0 and 1 are booleans)");
                }
                if constexpr (std::is_same_v<T, float>) {
                    if (d == "F16" || d == "BF16") {
                        const bool half = d == "F16";
                        for (std::size_t i = 0; i < n; i += chunk / 2) {
                            const std::size_t m = std::min(chunk / 2, n - i);
                            buf.resize(2 * m);
                            for (std::size_t k = 0; k < m; ++k) {
                                const std::uint16_t h = half ? float_to_half(src[i + k]) : float_to_bf16(src[i + k]);
                                buf[2 * k] = static_cast<std::byte>(h & 0xFF);
                                buf[2 * k + 1] = static_cast<std::byte>(h >> 8);
                            }
                            sink(buf.data(), buf.size());
                        }
                        return;
                    }
                }
                const std::size_t per = chunk / sizeof(T);
                for (std::size_t i = 0; i < n; i += per) {
                    const std::size_t m = std::min(per, n - i);
                    if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
                        sink(reinterpret_cast<const std::byte*>(src + i), m * sizeof(T));
                    } else {
                        buf.resize(m * sizeof(T));
                        copy_from(std::endian::big, reinterpret_cast<const std::byte*>(src + i),
                                  reinterpret_cast<T*>(buf.data()), m);
                        sink(buf.data(), buf.size());
                    }
                }
            },
            p.src->value);
    }
}

inline std::string errno_text() { return std::strerror(errno); }

/// An open file descriptor that closes itself.
class unique_fd {
public:
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    ~unique_fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    int get() const noexcept { return fd_; }
    /// Closes now and reports failure (close can report a delayed write error).
    bool close() noexcept {
        const int fd = fd_;
        fd_ = -1;
        return ::close(fd) == 0;
    }

private:
    int fd_;
};

}  // namespace detail

/// Validates a header held in memory (`bytes` holds at least the length prefix and the JSON;
/// `file_size` is the size of the whole file).
XGRAD_OUTLINE safetensors_header parse_safetensors_header(std::span<const std::byte> bytes, std::uint64_t file_size,
                                                   std::string_view name) {
    if (file_size < bytes.size()) file_size = bytes.size();
    const std::size_t n = detail::st_header_length(bytes, file_size, name);
    if (bytes.size() < 8 + n)
        throw format_error(detail::at_byte(name, 8, "truncated: the header needs " + std::to_string(n) + " bytes"));
    return detail::st_parse_header(std::string_view(reinterpret_cast<const char*>(bytes.data()) + 8, n), file_size, name);
}
XGRAD_INSTANCE(safetensors_header parse_safetensors_header(std::span<const std::byte> bytes, std::uint64_t file_size, std::string_view name))

/// Decodes a whole safetensors file held in memory; `name` appears in errors.
XGRAD_OUTLINE safetensors_file parse_safetensors(std::span<const std::byte> bytes, std::string_view name) {
    const auto h = parse_safetensors_header(bytes, bytes.size(), name);
    safetensors_file f;
    f.metadata = h.metadata;
    f.source = std::string(name);
    f.tensors.reserve(h.tensors.size());
    for (const auto& info : h.tensors) {
        const std::size_t at = h.data_start + info.begin;
        f.tensors.push_back(detail::st_decode(info, bytes.subspan(at, info.end - info.begin), at, name));
    }
    return f;
}
XGRAD_INSTANCE(safetensors_file parse_safetensors(std::span<const std::byte> bytes, std::string_view name))

/// Reads a safetensors file. io_error when it cannot be read, format_error when it is malformed.
/// Only the header is held in memory twice; each tensor is read once into a buffer of its size.
XGRAD_OUTLINE safetensors_file load_safetensors(const std::filesystem::path& path) {
    const std::string name = path.string();
    std::ifstream in(path, std::ios::binary);
    if (!in) throw io_error(name + ": cannot open for reading (" + detail::errno_text() + ")");
    in.seekg(0, std::ios::end);
    const auto end = in.tellg();
    in.seekg(0, std::ios::beg);
    if (end < 0 || !in) throw io_error(name + ": cannot determine the file size");
    const auto file_size = static_cast<std::uint64_t>(end);

    auto read_exact = [&](std::byte* dst, std::size_t n, std::size_t at, const char* what) {
        in.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n));
        if (static_cast<std::size_t>(in.gcount()) != n)
            throw format_error(detail::at_byte(name, at, std::string("truncated while reading ") + what +
                                                             " (the file changed while being read?)"));
    };
    std::vector<std::byte> head(std::min<std::uint64_t>(8, file_size));
    read_exact(head.data(), head.size(), 0, "the header length");
    const std::size_t n = detail::st_header_length(head, file_size, name);
    head.resize(8 + n);
    read_exact(head.data() + 8, n, 8, "the header");
    const auto h = parse_safetensors_header(head, file_size, name);

    safetensors_file f;
    f.metadata = h.metadata;
    f.source = name;
    // read in offset order (one forward pass), then restore header order
    std::vector<std::size_t> order(h.tensors.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](auto a, auto b) { return h.tensors[a].begin < h.tensors[b].begin; });
    std::vector<named_tensor> decoded(h.tensors.size());
    std::vector<std::byte> raw;
    for (auto i : order) {
        const auto& info = h.tensors[i];
        const std::size_t at = h.data_start + info.begin;
        raw.resize(info.end - info.begin);
        read_exact(raw.data(), raw.size(), at, ("tensor '" + info.name + "'").c_str());
        decoded[i] = detail::st_decode(info, raw, at, name);
    }
    f.tensors = std::move(decoded);
    return f;
}
XGRAD_INSTANCE(safetensors_file load_safetensors(const std::filesystem::path& path))

/// Reads and validates only the header of a file (names, dtypes, shapes, offsets).
XGRAD_OUTLINE safetensors_header inspect_safetensors(const std::filesystem::path& path) {
    const std::string name = path.string();
    std::ifstream in(path, std::ios::binary);
    if (!in) throw io_error(name + ": cannot open for reading (" + detail::errno_text() + ")");
    in.seekg(0, std::ios::end);
    const auto file_size = static_cast<std::uint64_t>(std::max<std::streamoff>(in.tellg(), 0));
    in.seekg(0, std::ios::beg);
    std::vector<std::byte> head(std::min<std::uint64_t>(8, file_size));
    in.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(head.size()));
    const std::size_t n = detail::st_header_length(head, file_size, name);
    head.resize(8 + n);
    in.read(reinterpret_cast<char*>(head.data() + 8), static_cast<std::streamsize>(n));
    if (static_cast<std::size_t>(in.gcount()) != n)
        throw format_error(detail::at_byte(name, 8, "truncated while reading the header"));
    return parse_safetensors_header(head, file_size, name);
}
XGRAD_INSTANCE(safetensors_header inspect_safetensors(const std::filesystem::path& path))

/// The bytes of a safetensors file holding `tensors` (value_error for duplicate or reserved
/// names, invalid UTF-8, or a requested dtype the tensor cannot be stored as).
XGRAD_OUTLINE std::vector<std::byte> to_safetensors(const std::vector<named_tensor>& tensors,
                                             const std::map<std::string, std::string>& metadata = {}) {
    std::vector<std::byte> out;
    detail::st_serialize(tensors, metadata, [&](const std::byte* p, std::size_t n) { out.insert(out.end(), p, p + n); });
    return out;
}
XGRAD_INSTANCE(std::vector<std::byte> to_safetensors(const std::vector<named_tensor>& tensors, const std::map<std::string, std::string>& metadata))

/// Writes a safetensors file atomically: the bytes go to a new temporary file in the same
/// directory, which is flushed to disk (fsync) and then renamed over `path`; the directory is
/// fsynced so the rename itself survives a crash. A process killed at any point leaves either
/// the old file or the new one, never a mix (at worst a stray ".NAME.tmp-*" file remains).
XGRAD_OUTLINE void save_safetensors(const std::filesystem::path& path, const std::vector<named_tensor>& tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
    const std::string name = path.string();
    // validate before touching the disk
    (void)detail::st_plan(tensors, metadata);
    const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    const std::string base = path.filename().string();
    if (base.empty() || base == "." || base == "..") throw io_error(name + ": not a file name");

    std::random_device rd;
    std::filesystem::path tmp;
    int fd = -1;
    for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
        tmp = dir / ("." + base + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 1000000));
        // 0666 less the umask: the same permissions a plain new file would get
        fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0)
        throw io_error(name + ": cannot create a temporary file in " + dir.string() + " (" + detail::errno_text() + ")");
    detail::unique_fd file(fd);
    auto fail = [&](const std::string& what) {
        const std::string reason = detail::errno_text();
        ::unlink(tmp.c_str());
        throw io_error(name + ": " + what + " (" + reason + ")");
    };
    try {
        std::size_t written = 0;
        detail::st_serialize(tensors, metadata, [&](const std::byte* p, std::size_t n) {
            while (n > 0) {
                const ::ssize_t w = ::write(file.get(), p, n);
                if (w < 0) {
                    if (errno == EINTR) continue;
                    fail("write failed after " + std::to_string(written) + " bytes");
                }
                p += w;
                n -= static_cast<std::size_t>(w);
                written += static_cast<std::size_t>(w);
            }
            if (detail::safetensors_write_hook) detail::safetensors_write_hook(written);
        });
    } catch (const io_error&) {
        throw;
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
    if (::fsync(file.get()) != 0) fail("fsync failed");
    if (!file.close()) fail("close failed");
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename the temporary file into place");
    // make the rename durable; a failure here leaves a complete file, so it is not an error
    if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}
XGRAD_INSTANCE(void save_safetensors(const std::filesystem::path& path, const std::vector<named_tensor>& tensors, const std::map<std::string, std::string>& metadata))

}  // namespace xgrad::io
