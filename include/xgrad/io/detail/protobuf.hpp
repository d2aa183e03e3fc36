#pragma once
// A minimal protocol-buffers encoder: enough of the wire format to write TensorBoard event
// files and ONNX models without libprotobuf. A message is built field by field into a byte
// string; a nested message is encoded on its own and appended as a length-delimited field.
//   wire type 0: varint (int32/int64/uint64/bool/enum; negative int64 take 10 bytes)
//   wire type 1: 64-bit little endian (double)
//   wire type 2: length-delimited (string, bytes, nested message, packed repeated scalars)
//   wire type 5: 32-bit little endian (float)
#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace xgrad::io::detail {

class pb_writer {
public:
    enum wire : std::uint32_t { varint_wire = 0, fixed64_wire = 1, bytes_wire = 2, fixed32_wire = 5 };

    void raw_varint(std::uint64_t v) {
        while (v >= 0x80) {
            out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
            v >>= 7;
        }
        out_.push_back(static_cast<char>(v));
    }
    void key(std::uint32_t field, wire w) { raw_varint((std::uint64_t{field} << 3) | w); }

    void uint_field(std::uint32_t field, std::uint64_t v) {
        key(field, varint_wire);
        raw_varint(v);
    }
    /// int32/int64/enum: two's complement as a 64-bit varint (what protobuf does).
    void int_field(std::uint32_t field, std::int64_t v) { uint_field(field, static_cast<std::uint64_t>(v)); }
    void bool_field(std::uint32_t field, bool v) { uint_field(field, v ? 1 : 0); }
    void double_field(std::uint32_t field, double v) {
        key(field, fixed64_wire);
        fixed(std::bit_cast<std::uint64_t>(v), 8);
    }
    void float_field(std::uint32_t field, float v) {
        key(field, fixed32_wire);
        fixed(std::bit_cast<std::uint32_t>(v), 4);
    }
    /// string, bytes or an already encoded message.
    void bytes_field(std::uint32_t field, std::string_view bytes) {
        key(field, bytes_wire);
        raw_varint(bytes.size());
        out_.append(bytes);
    }
    void message_field(std::uint32_t field, const pb_writer& m) { bytes_field(field, m.bytes()); }
    /// Appends the fields of `m` to this message (protobuf messages concatenate).
    void append(const pb_writer& m) { out_ += m.out_; }
    /// A packed repeated double field.
    void packed_doubles(std::uint32_t field, std::span<const double> v) {
        key(field, bytes_wire);
        raw_varint(v.size() * 8);
        for (double d : v) fixed(std::bit_cast<std::uint64_t>(d), 8);
    }

    const std::string& bytes() const noexcept { return out_; }
    std::size_t size() const noexcept { return out_.size(); }

private:
    void fixed(std::uint64_t v, int n) {
        for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
    std::string out_;
};

}  // namespace xgrad::io::detail
