// Kiln standalone CUDA host program: runs a compiled graph with no Node and no Kiln. Every
// file is found in the program's own folder (not the current directory) and checked against
// the sha256 the manifest lists before it is used. Reads manifest.json (buffers, memory
// slots, kernels in launch order with their launch shapes), weights.safetensors (the state:
// parameters, optimizer state) and kernels.ptx, binds the CUDA driver with dlopen
// (cuda-driver.h), runs the graph --steps times feeding state outputs back into their inputs,
// prints user outputs and writes outputs and state to --output as safetensors, as `kiln run` does.
//
// usage: ./run [--input FILE.safetensors] [--output FILE.safetensors] [--steps N] [--dir ARTIFACT_DIR] [--check-only] [--profile]
// --input holds the user inputs by name, converted as `kiln run` converts them (F16/BF16 kept
// 16-bit or widened for an f32 input, other floats to f32, integers to i32 when every value
// fits, BOOL); f16/bf16 tensors are 2 bytes an element everywhere (device, files). Without
// --input every user input gets synthetic values (floats in [-1, 1), i32 i % 10, bool i % 2).
// A `seed` input gets the step.
// --check-only stops after the checks (hashes, manifest, weights, inputs), before CUDA starts.
// --profile records CUDA events around every kernel launch and prints, after the run, each
// kernel's calls, total and mean milliseconds and share of the kernels' time (as `kiln profile`).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "cuda-driver.h"

namespace {

[[noreturn]] void die(const std::string& file, const std::string& why) {
  fprintf(stderr, "error: %s: %s\n", file.c_str(), why.c_str());
  exit(1);
}

// ---- a strict JSON reader: duplicate keys refused, nesting bounded, every access in bounds ----
struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool boolean = false;
  double number = 0;
  bool integral = false;  // a number written without fraction or exponent
  std::string text;
  std::vector<Json> items;
  std::map<std::string, Json> fields;

  const Json& operator[](const std::string& key) const {
    static const Json missing;
    auto it = fields.find(key);
    return it == fields.end() ? missing : it->second;
  }
  bool has(const std::string& key) const { return fields.count(key) > 0; }
  long long integer() const { return static_cast<long long>(number); }
};

struct JsonParser {
  const std::string& s;
  size_t at = 0;
  std::string file;

  [[noreturn]] void fail(const std::string& why) { die(file, "invalid JSON at byte " + std::to_string(at) + ": " + why); }
  char peek() const { return at < s.size() ? s[at] : '\0'; }
  void space() {
    while (at < s.size() && (s[at] == ' ' || s[at] == '\n' || s[at] == '\r' || s[at] == '\t')) at++;
  }
  void expect(char c) {
    if (peek() != c || at >= s.size()) fail(std::string("expected '") + c + "'");
    at++;
  }
  Json document() {
    Json v = value(0);
    space();
    if (at != s.size()) fail("unexpected characters after the JSON value");
    return v;
  }
  Json value(int depth) {
    if (depth > 16) fail("nested deeper than 16 levels");
    space();
    if (at >= s.size()) fail("unexpected end");
    Json v;
    char c = s[at];
    if (c == '{') {
      v.kind = Json::Object;
      at++;
      space();
      if (peek() == '}') { at++; return v; }
      for (;;) {
        space();
        if (peek() != '"') fail("expected a key string");
        std::string key = string();
        if (v.fields.count(key)) fail("duplicate key \"" + key + "\"");
        space();
        expect(':');
        v.fields[key] = value(depth + 1);
        space();
        if (peek() == ',') { at++; continue; }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Json::Array;
      at++;
      space();
      if (peek() == ']') { at++; return v; }
      for (;;) {
        v.items.push_back(value(depth + 1));
        space();
        if (peek() == ',') { at++; continue; }
        expect(']');
        return v;
      }
    }
    if (c == '"') { v.kind = Json::String; v.text = string(); return v; }
    if (s.compare(at, 4, "true") == 0) { at += 4; v.kind = Json::Bool; v.boolean = true; return v; }
    if (s.compare(at, 5, "false") == 0) { at += 5; v.kind = Json::Bool; return v; }
    if (s.compare(at, 4, "null") == 0) { at += 4; return v; }
    // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    size_t start = at;
    auto digits = [&]() { size_t from = at; while (at < s.size() && s[at] >= '0' && s[at] <= '9') at++; return at - from; };
    if (peek() == '-') at++;
    if (peek() == '0') at++;
    else if (digits() == 0) fail("unexpected character");
    v.integral = true;
    if (peek() == '.') { at++; v.integral = false; if (digits() == 0) fail("bad number"); }
    if (peek() == 'e' || peek() == 'E') { at++; v.integral = false; if (peek() == '+' || peek() == '-') at++; if (digits() == 0) fail("bad number"); }
    v.number = strtod(s.substr(start, at - start).c_str(), nullptr);
    v.kind = Json::Number;
    return v;
  }
  std::string string() {
    at++;  // the opening quote
    std::string out;
    while (at < s.size() && s[at] != '"') {
      char c = s[at++];
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') { out += c; continue; }
      if (at >= s.size()) break;
      char e = s[at++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case '"': case '\\': case '/': out += e; break;
        case 'u': {
          if (at + 4 > s.size()) fail("bad \\u escape");
          unsigned code = 0;
          for (int i = 0; i < 4; i++) {
            char h = s[at + i];
            int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
            if (d < 0) fail("bad \\u escape");
            code = code * 16 + static_cast<unsigned>(d);
          }
          at += 4;
          if (code < 0x80) out += static_cast<char>(code);
          else if (code < 0x800) { out += static_cast<char>(0xc0 | (code >> 6)); out += static_cast<char>(0x80 | (code & 0x3f)); }
          else { out += static_cast<char>(0xe0 | (code >> 12)); out += static_cast<char>(0x80 | ((code >> 6) & 0x3f)); out += static_cast<char>(0x80 | (code & 0x3f)); }
          break;
        }
        default: fail(std::string("bad escape '\\") + e + "'");
      }
    }
    if (at >= s.size()) fail("unterminated string");
    at++;
    return out;
  }
};

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) die(path, "cannot read it");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// ---- SHA-256 (FIPS 180-4), to check every file against the manifest ----
std::string sha256Hex(const std::string& data) {
  static const uint32_t K[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74,
      0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d,
      0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e,
      0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
      0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  // Padding: a 1 bit, zeros to 56 mod 64 bytes, the bit length as a 64-bit big-endian number.
  std::string message = data;
  uint64_t bitLength = static_cast<uint64_t>(data.size()) * 8;
  message += static_cast<char>(0x80);
  while (message.size() % 64 != 56) message += '\0';
  for (int i = 7; i >= 0; i--) message += static_cast<char>((bitLength >> (8 * i)) & 0xff);
  uint32_t w[64];
  for (size_t block = 0; block < message.size(); block += 64) {
    for (int t = 0; t < 16; t++) {
      const unsigned char* p = reinterpret_cast<const unsigned char*>(message.data() + block + 4 * t);
      w[t] = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
    }
    for (int t = 16; t < 64; t++) {
      uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; t++) {
      uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
      uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  char hex[65];
  for (int i = 0; i < 8; i++) snprintf(hex + 8 * i, 9, "%08x", h[i]);
  return std::string(hex, 64);
}

// Bytes per element of each dtype a manifest names (runtime/artifact/format.ts ARTIFACT_DTYPES):
// f16 and bf16 are held as their 16-bit patterns, as the kernels store __half / __nv_bfloat16.
size_t elementBytes(const std::string& dtype) {
  if (dtype == "f32" || dtype == "i32") return 4;
  if (dtype == "f16" || dtype == "bf16") return 2;
  if (dtype == "bool") return 1;
  fprintf(stderr, "error: manifest.json: dtype '%s' is not one this host program knows (f32, f16, bf16, i32, bool)\n", dtype.c_str());
  exit(1);
}

bool isHalf(const std::string& dtype) { return dtype == "f16" || dtype == "bf16"; }

size_t numel(const Json& shape) {
  size_t n = 1;
  for (const Json& d : shape.items) n *= static_cast<size_t>(d.integer());
  return n;
}

std::string shapeText(const std::vector<size_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); i++) out += (i ? "," : "") + std::to_string(shape[i]);
  return out + "]";
}

std::vector<size_t> shapeOf(const Json& shape) {
  std::vector<size_t> out;
  for (const Json& d : shape.items) out.push_back(static_cast<size_t>(d.integer()));
  return out;
}

// ---- safetensors, validated as the TypeScript reader does (runtime/artifact/safetensors.ts) ----
// Tensors come back converted to Kiln's dtypes: F16 and BF16 stay f16 and bf16 (bit patterns),
// other floats to f32, integers to i32 (every value must fit), BOOL to bool.
struct Tensor {
  std::string dtype;  // f32, f16, bf16, i32, bool
  std::vector<size_t> shape;
  std::string bytes;  // little-endian elements
};

struct FileDtype {
  const char* name;
  size_t bytes;
  char kind;  // 'f' float, 'i' signed, 'u' unsigned, 'b' bool
};
const FileDtype FILE_DTYPES[] = {{"F64", 8, 'f'}, {"F32", 4, 'f'}, {"F16", 2, 'f'}, {"BF16", 2, 'f'}, {"I64", 8, 'i'}, {"I32", 4, 'i'}, {"I16", 2, 'i'},
                                 {"I8", 1, 'i'},  {"U64", 8, 'u'}, {"U32", 4, 'u'}, {"U16", 2, 'u'}, {"U8", 1, 'u'},   {"BOOL", 1, 'b'}};

float halfToFloat(uint16_t bits) {
  int exponent = (bits >> 10) & 0x1f, mantissa = bits & 0x3ff;
  float sign = (bits & 0x8000) ? -1.0f : 1.0f;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);
  if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
  return sign * std::ldexp(static_cast<float>(1024 + mantissa), exponent - 25);
}

float bf16ToFloat(uint16_t bits) {
  uint32_t b32 = uint32_t(bits) << 16;
  float v;
  memcpy(&v, &b32, 4);
  return v;
}

// float -> f16 bits, rounded to nearest even (as runtime/artifact/half.ts and __float2half_rn).
uint16_t floatToHalf(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return sign | (absx > 0x7f800000u ? 0x7e00 : 0x7c00);  // NaN, infinity
  if (absx >= 0x477ff000u) return sign | 0x7c00;                                   // rounds past 65504
  if (absx < 0x38800000u) {                                                        // below 2^-14: subnormal steps of 2^-24
    const float scaled = std::fabs(f) * 16777216.0f;                               // exact; rint rounds half to even
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  const uint32_t mantissa = absx + 0xfffu + ((absx >> 13) & 1u);  // round the 13 dropped bits to nearest even
  return sign | static_cast<uint16_t>((mantissa - 0x38000000u) >> 13);
}

// float -> bf16 bits, rounded to nearest even.
uint16_t floatToBf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // NaN stays NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

float halfBitsToFloat(const std::string& dtype, uint16_t bits) { return dtype == "bf16" ? bf16ToFloat(bits) : halfToFloat(bits); }
uint16_t floatToHalfBits(const std::string& dtype, float v) { return dtype == "bf16" ? floatToBf16(v) : floatToHalf(v); }

// A tensor of f16/bf16 bit patterns widened to f32 (exact), as `kiln run` widens a 16-bit file tensor for an f32 input.
std::string widenHalf(const std::string& dtype, const std::string& bytes) {
  std::string out(bytes.size() * 2, '\0');
  for (size_t i = 0; i < bytes.size() / 2; i++) {
    uint16_t bits;
    memcpy(&bits, &bytes[2 * i], 2);
    float v = halfBitsToFloat(dtype, bits);
    memcpy(&out[4 * i], &v, 4);
  }
  return out;
}

Tensor convertTensor(const std::string& file, const std::string& name, const FileDtype& from, const std::vector<size_t>& shape, const unsigned char* p, size_t count) {
  Tensor t;
  t.shape = shape;
  auto fail = [&](const std::string& why) { die(file, "tensor \"" + name + "\": " + why); };
  if (from.kind == 'b') {
    t.dtype = "bool";
    t.bytes.assign(reinterpret_cast<const char*>(p), count);
    for (size_t i = 0; i < count; i++)
      if (p[i] > 1) fail("BOOL element " + std::to_string(i) + " is byte " + std::to_string(p[i]) + ", not 0 or 1");
    return t;
  }
  if (from.kind == 'f' && from.bytes == 2) {  // F16, BF16: kept as they are
    t.dtype = std::string(from.name) == "BF16" ? "bf16" : "f16";
    t.bytes.assign(reinterpret_cast<const char*>(p), 2 * count);
    return t;
  }
  t.bytes.resize(4 * count);
  auto raw = [&](size_t i) {
    uint64_t v = 0;
    for (size_t b = 0; b < from.bytes; b++) v |= uint64_t(p[i * from.bytes + b]) << (8 * b);
    return v;
  };
  if (from.kind == 'f') {
    t.dtype = "f32";
    for (size_t i = 0; i < count; i++) {
      uint64_t bits = raw(i);
      float v;
      if (from.bytes == 8) { double d; memcpy(&d, &bits, 8); v = static_cast<float>(d); }
      else { uint32_t b32 = static_cast<uint32_t>(bits); memcpy(&v, &b32, 4); }
      memcpy(&t.bytes[4 * i], &v, 4);
    }
    return t;
  }
  t.dtype = "i32";
  for (size_t i = 0; i < count; i++) {
    uint64_t bits = raw(i);
    bool fits;
    int64_t value;
    if (from.kind == 'u') {
      fits = bits <= 0x7fffffffull;
      value = static_cast<int64_t>(bits);
    } else {
      int shift = 64 - 8 * static_cast<int>(from.bytes);  // sign-extend
      value = static_cast<int64_t>(bits << shift) >> shift;
      fits = value >= INT32_MIN && value <= INT32_MAX;
    }
    if (!fits) fail(std::string(from.name) + " element " + std::to_string(i) + " is " + (from.kind == 'u' ? std::to_string(bits) : std::to_string(value)) + ", outside i32's range");
    int32_t v = static_cast<int32_t>(value);
    memcpy(&t.bytes[4 * i], &v, 4);
  }
  return t;
}

std::map<std::string, Tensor> readSafetensors(const std::string& path) {
  const std::string file = readFile(path);
  auto fail = [&](const std::string& why) { die(path, why); };
  if (file.size() < 8) fail("not a safetensors file: shorter than the 8-byte header length");
  uint64_t headerBytes = 0;
  for (int i = 7; i >= 0; i--) headerBytes = (headerBytes << 8) | static_cast<unsigned char>(file[i]);
  if (headerBytes > 100000000ull) fail("header length " + std::to_string(headerBytes) + " is over the 100000000-byte limit");
  if (headerBytes > file.size() - 8) fail("header length " + std::to_string(headerBytes) + " runs past the end of the file");
  if (headerBytes == 0) fail("header is empty");
  const std::string headerText = file.substr(8, headerBytes);
  if (headerText.compare(0, 3, "\xef\xbb\xbf") == 0) fail("header starts with a UTF-8 byte-order mark");
  if (headerText[0] != '{') fail("header does not start with '{'");
  JsonParser parser{headerText, 0, path};
  Json header = parser.document();
  const size_t dataStart = 8 + headerBytes, dataBytes = file.size() - dataStart;
  struct Entry { std::string name; const FileDtype* dtype; std::vector<size_t> shape; size_t begin, end; };
  std::vector<Entry> entries;
  for (const auto& [name, e] : header.fields) {
    if (name == "__metadata__") {
      if (e.kind != Json::Object) fail("__metadata__ is not an object of strings");
      for (const auto& [key, v] : e.fields)
        if (v.kind != Json::String) fail("__metadata__[\"" + key + "\"] is not a string");
      continue;
    }
    const std::string where = "tensor \"" + name + "\"";
    if (e.kind != Json::Object) fail(where + " is not an object { dtype, shape, data_offsets }");
    for (const auto& field : e.fields)
      if (field.first != "dtype" && field.first != "shape" && field.first != "data_offsets") fail(where + " has an unknown field \"" + field.first + "\"");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!e.has(field)) fail(where + " has no " + field);
    const FileDtype* dtype = nullptr;
    for (const FileDtype& d : FILE_DTYPES)
      if (e["dtype"].kind == Json::String && e["dtype"].text == d.name) dtype = &d;
    if (!dtype) fail(where + ": dtype is not one Kiln reads (F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL)");
    const Json& shape = e["shape"];
    if (shape.kind != Json::Array || shape.items.size() > 64) fail(where + ": shape is not a list of at most 64 sizes");
    double elements = 1;
    std::vector<size_t> dims;
    for (const Json& d : shape.items) {
      if (d.kind != Json::Number || !d.integral || d.number < 0 || d.number > 9007199254740992.0) fail(where + ": shape holds something that is not a size");
      if (d.number != 0 && elements > 9007199254740992.0 / d.number) fail(where + ": shape has more than 2^53 elements");
      elements *= d.number;
      dims.push_back(static_cast<size_t>(d.number));
    }
    const Json& offsets = e["data_offsets"];
    if (offsets.kind != Json::Array || offsets.items.size() != 2) fail(where + ": data_offsets is not [begin, end]");
    for (const Json& o : offsets.items)
      if (o.kind != Json::Number || !o.integral || o.number < 0 || o.number > 9007199254740992.0) fail(where + ": data_offsets is not [begin, end] of non-negative integers");
    size_t begin = static_cast<size_t>(offsets.items[0].number), end = static_cast<size_t>(offsets.items[1].number);
    if (end < begin) fail(where + ": data_offsets end before they begin");
    if (end > dataBytes) fail(where + ": data_offsets run past the " + std::to_string(dataBytes) + " data bytes");
    if (static_cast<double>(end - begin) != elements * static_cast<double>(dtype->bytes)) fail(where + ": " + std::to_string(end - begin) + " bytes do not match its dtype and shape");
    entries.push_back({name, dtype, dims, begin, end});
  }
  // The tensors must tile the data section: no gaps, overlaps, aliases or trailing bytes.
  std::vector<const Entry*> sorted;
  for (const Entry& e : entries) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) { return a->begin != b->begin ? a->begin < b->begin : a->end < b->end; });
  size_t covered = 0;
  for (const Entry* e : sorted) {
    if (e->begin > covered) fail("gap: data bytes [" + std::to_string(covered) + ", " + std::to_string(e->begin) + ") belong to no tensor");
    if (e->begin < covered) fail("tensor \"" + e->name + "\" overlaps another tensor's bytes");
    covered = e->end;
  }
  if (covered != dataBytes) fail(std::to_string(dataBytes - covered) + " trailing byte(s) after the last tensor");
  std::map<std::string, Tensor> out;
  for (const Entry& e : entries)
    out[e.name] = convertTensor(path, e.name, *e.dtype, e.shape, reinterpret_cast<const unsigned char*>(file.data() + dataStart + e.begin), (e.end - e.begin) / e.dtype->bytes);
  return out;
}

std::string jsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') { out += '\\'; out += c; }
    else if (static_cast<unsigned char>(c) < 0x20) { char buf[8]; snprintf(buf, sizeof buf, "\\u%04x", c); out += buf; }
    else out += c;
  }
  return out + "\"";
}

void writeSafetensors(const std::string& path, const std::map<std::string, Tensor>& tensors) {
  std::string header = "{";
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (header.size() > 1) header += ",";
    const char* dtype = t.dtype == "f32" ? "F32" : t.dtype == "f16" ? "F16" : t.dtype == "bf16" ? "BF16" : t.dtype == "i32" ? "I32" : "BOOL";
    std::string dims;
    for (size_t i = 0; i < t.shape.size(); i++) dims += (i ? "," : "") + std::to_string(t.shape[i]);
    header += jsonString(name) + ":{\"dtype\":\"" + dtype + "\",\"shape\":[" + dims + "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.bytes.size()) + "]}";
    offset += t.bytes.size();
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';
  std::ofstream out(path, std::ios::binary);
  if (!out) die(path, "cannot write it");
  for (int i = 0; i < 8; i++) out.put(static_cast<char>((static_cast<uint64_t>(header.size()) >> (8 * i)) & 0xff));
  out << header;
  for (const auto& entry : tensors) out << entry.second.bytes;
  if (!out) die(path, "cannot write it");
}

/** The folder this program lives in: its files are found there whatever the current directory. */
std::string ownFolder(const char* argv0) {
  char buffer[4096];
  ssize_t n = readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  std::string exe = n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string(argv0);
  size_t slash = exe.rfind('/');
  return slash == std::string::npos ? "." : exe.substr(0, slash);
}

/** Reads every file the manifest lists and refuses the folder unless each matches its sha256. */
void verifyFiles(const std::string& dir, const Json& manifest) {
  const Json& files = manifest["files"];
  if (files.kind != Json::Object) die(dir + "/manifest.json", "files is missing or not an object");
  for (const auto& [name, hash] : files.fields) {
    if (name.empty() || name[0] == '/' || name.find("..") != std::string::npos) die(dir + "/manifest.json", "files lists \"" + name + "\", outside the folder");
    const std::string path = dir + "/" + name;
    std::ifstream probe(path, std::ios::binary);
    if (!probe) die(path, "missing (listed in manifest.json files)");
    const std::string actual = sha256Hex(readFile(path));
    if (hash.kind != Json::String || actual != hash.text) die(path, "sha256 mismatch (manifest says " + hash.text + ", file has " + actual + ")");
  }
}

std::string syntheticInput(const Json& io, uint32_t salt) {
  size_t n = numel(io["shape"]);
  const std::string& dtype = io["dtype"].text;
  std::string out(n * elementBytes(dtype), '\0');
  uint32_t state = 0x9e3779b9u ^ salt;
  for (size_t i = 0; i < n; i++) {
    if (dtype == "f32" || isHalf(dtype)) {
      state = state * 1664525u + 1013904223u;
      float v = static_cast<float>(state >> 8) / 16777216.0f * 2.0f - 1.0f;
      if (dtype == "f32") memcpy(&out[4 * i], &v, 4);
      else { uint16_t bits = floatToHalfBits(dtype, v); memcpy(&out[2 * i], &bits, 2); }
    } else if (dtype == "i32") {
      int32_t v = static_cast<int32_t>(i % 10);
      memcpy(&out[4 * i], &v, 4);
    } else {
      out[i] = static_cast<char>(i % 2);
    }
  }
  return out;
}

void printValues(const std::string& label, const Json& io, const std::string& bytes) {
  size_t n = numel(io["shape"]);
  const std::string& dtype = io["dtype"].text;
  printf("%s %s%s:", label.c_str(), dtype.c_str(), shapeText(shapeOf(io["shape"])).c_str());
  for (size_t i = 0; i < n && i < 8; i++) {
    if (dtype == "f32") { float v; memcpy(&v, &bytes[4 * i], 4); printf(" %.6g", v); }
    else if (isHalf(dtype)) { uint16_t bits; memcpy(&bits, &bytes[2 * i], 2); printf(" %.6g", halfBitsToFloat(dtype, bits)); }
    else if (dtype == "i32") { int32_t v; memcpy(&v, &bytes[4 * i], 4); printf(" %d", v); }
    else printf(" %d", bytes[i] ? 1 : 0);
  }
  printf(n > 8 ? " ...\n" : "\n");
}

KilnCudaDriver cu;
std::string lastKernel = "(none)";

void check(CUresult r, const std::string& what) {
  if (r == 0) return;
  fprintf(stderr, "error: %s: %s\n", what.c_str(), cu.describe(r).c_str());
  exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 1;
  std::string dir = ownFolder(argv[0]);
  std::string outputFile, inputFile;
  bool checkOnly = false;
  bool profile = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) { fprintf(stderr, "error: %s needs a value\n", a.c_str()); exit(2); }
      return argv[++i];
    };
    if (a == "--steps") {
      std::string v = next();
      char* end = nullptr;
      long n = strtol(v.c_str(), &end, 10);
      if (*end != '\0' || n < 1 || n > 1000000000) { fprintf(stderr, "error: --steps must be a positive integer, got '%s'\n", v.c_str()); return 2; }
      steps = static_cast<int>(n);
    } else if (a == "--dir") dir = next();
    else if (a == "--output") outputFile = next();
    else if (a == "--input") {
      if (!inputFile.empty()) { fprintf(stderr, "error: --input is given twice (one safetensors file holds every input)\n"); return 2; }
      inputFile = next();
    } else if (a == "--check-only") checkOnly = true;
    else if (a == "--profile") profile = true;
    else if (a == "--sha256") {  // prints a file's sha256, as the manifest checks compute it
      printf("%s\n", sha256Hex(readFile(next())).c_str());
      return 0;
    } else if (a == "--help" || a == "-h") {
      printf("usage: %s [--input FILE.safetensors] [--output FILE.safetensors] [--steps N] [--dir ARTIFACT_DIR] [--check-only] [--profile]\n", argv[0]);
      return 0;
    } else { fprintf(stderr, "error: unknown argument %s (try --help)\n", a.c_str()); return 2; }
  }

  const std::string manifestPath = dir + "/manifest.json";
  std::string manifestText = readFile(manifestPath);
  JsonParser parser{manifestText, 0, manifestPath};
  Json m = parser.document();
  if (m["target"].text != "cuda") die(manifestPath, "target is '" + m["target"].text + "', this host program runs 'cuda' artifacts");
  // runtime/artifact/manifest.ts MANIFEST_SCHEMA_VERSION: 2 changed only webgpu's 16-bit layout, so a cuda folder of 1 reads the same.
  const Json& schema = m["schemaVersion"];
  if (schema.kind != Json::Number || !schema.integral || (schema.integer() != 1 && schema.integer() != 2)) {
    const std::string shown = schema.kind == Json::Null ? "missing" : schema.kind != Json::Number ? "not a number" : schema.integral ? std::to_string(schema.integer()) : "not an integer";
    die(manifestPath, "schemaVersion is " + shown + ", this host program reads schemaVersion 2 (or 1)");
  }
  verifyFiles(dir, m);
  const Json& buffers = m["buffers"];
  const Json& inputs = m["inputs"];
  const Json& outputs = m["outputs"];
  const Json& kernels = m["kernels"];
  std::map<std::string, Tensor> weights;
  if (m.has("weights")) {
    if (!m["files"].has(m["weights"].text)) die(manifestPath, "weights has no sha256 in files");
    weights = readSafetensors(dir + "/" + m["weights"].text);
  }
  std::map<std::string, Tensor> given;
  if (!inputFile.empty()) given = readSafetensors(inputFile);

  std::map<std::string, std::string> hostInputs;
  for (const Json& io : inputs.items) {
    const std::string& name = io["name"].text;
    const std::string& role = io["role"].text;
    const std::vector<size_t> shape = shapeOf(io["shape"]);
    elementBytes(io["dtype"].text);  // refuses a dtype it does not know
    auto take = [&](const std::string& file, const Tensor& t) {
      // A 16-bit file tensor widens exactly into an f32 input; otherwise the dtype must be the input's.
      const bool widen = io["dtype"].text == "f32" && isHalf(t.dtype);
      if ((t.dtype != io["dtype"].text && !widen) || t.shape != shape)
        die(file, "tensor \"" + name + "\" is " + t.dtype + shapeText(t.shape) + ", the artifact expects " + io["dtype"].text + shapeText(shape));
      hostInputs[name] = widen ? widenHalf(t.dtype, t.bytes) : t.bytes;
    };
    if (role == "state") {
      if (!weights.count(name)) die(dir + "/" + m["weights"].text, "no tensor \"" + name + "\" (a state input of the graph)");
      take(dir + "/" + m["weights"].text, weights[name]);
    } else if (role == "seed") {
      hostInputs[name] = std::string(4, '\0');
    } else if (!inputFile.empty()) {
      if (!given.count(name)) die(inputFile, "no tensor \"" + name + "\" (the artifact's input " + io["dtype"].text + shapeText(shape) + ")");
      take(inputFile, given[name]);
    } else {
      hostInputs[name] = syntheticInput(io, static_cast<uint32_t>(hostInputs.size()));
    }
  }
  if (checkOnly) {
    printf("ok: %s: %zu file(s) match their sha256, %zu input(s) ready%s\n", m["name"].text.c_str(), m["files"].fields.size(), hostInputs.size(), inputFile.empty() ? " (synthetic user inputs)" : "");
    return 0;
  }

  std::string error;
  if (!cu.load(error)) { fprintf(stderr, "error: %s\n", error.c_str()); return 1; }
  check(cu.cuInit(0), "cuInit");
  int count = 0;
  check(cu.cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (count == 0) { fprintf(stderr, "error: the CUDA driver reports no device\n"); return 1; }
  CUdevice device;
  check(cu.cuDeviceGet(&device, 0), "cuDeviceGet");
  CUcontext context;
  check(cu.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
  check(cu.cuCtxSetCurrent(context), "cuCtxSetCurrent");
  CUstream stream;
  check(cu.cuStreamCreate(&stream, 0), "cuStreamCreate");
  char deviceName[256] = {0};
  cu.cuDeviceGetName(deviceName, sizeof deviceName, device);

  std::string ptx = readFile(dir + "/kernels.ptx");
  CUmodule module;
  check(cu.cuModuleLoadData(&module, ptx.c_str()), "cuModuleLoadData(kernels.ptx)");
  std::vector<CUfunction> functions;
  for (const Json& k : kernels.items) {
    CUfunction f;
    check(cu.cuModuleGetFunction(&f, module, k["name"].text.c_str()), "cuModuleGetFunction(" + k["name"].text + ")");
    functions.push_back(f);
  }

  std::vector<CUdeviceptr> slots;
  for (const Json& bytes : m["memory"]["slotBytes"].items) {
    CUdeviceptr p;
    size_t size = std::max<size_t>(4, (static_cast<size_t>(bytes.integer()) + 3) / 4 * 4);
    check(cu.cuMemAlloc(&p, size), "cuMemAlloc");
    check(cu.cuMemsetD8(p, 0, size), "cuMemsetD8");
    slots.push_back(p);
  }
  auto pointerOf = [&](long long bufferId) -> CUdeviceptr {
    const Json& b = buffers.items.at(static_cast<size_t>(bufferId));
    return slots.at(static_cast<size_t>(b["slot"].integer())) + static_cast<CUdeviceptr>(b["offset"].integer());
  };

  for (const Json& io : inputs.items) {
    const std::string& bytes = hostInputs[io["name"].text];
    check(cu.cuMemcpyHtoDAsync(pointerOf(io["buffer"].integer()), bytes.data(), bytes.size(), stream), "upload of " + io["name"].text);
  }

  printf("%s on %s: %zu kernel(s) per step, %d step(s)\n", m["name"].text.c_str(), deviceName, functions.size(), steps);
  // --profile: event k before kernel k, event k+1 after it; milliseconds summed per kernel over the steps.
  std::vector<CUevent> events;
  std::vector<double> kernelMs(functions.size(), 0.0);
  if (profile) {
    events.resize(functions.size() + 1);
    for (CUevent& e : events) check(cu.cuEventCreate(&e, 0), "cuEventCreate");
  }
  auto started = std::chrono::steady_clock::now();
  for (int step = 0; step < steps; step++) {
    for (const Json& io : inputs.items)
      if (io["role"].text == "seed") {
        int32_t seed = step;
        check(cu.cuMemcpyHtoDAsync(pointerOf(io["buffer"].integer()), &seed, 4, stream), "upload of the seed");
      }
    if (profile) check(cu.cuEventRecord(events[0], stream), "cuEventRecord");
    for (size_t k = 0; k < functions.size(); k++) {
      const Json& kernel = kernels.items[k];
      std::vector<CUdeviceptr> pointers;
      for (const Json& id : kernel["params"].items) pointers.push_back(pointerOf(id.integer()));
      std::vector<void*> params;
      for (CUdeviceptr& p : pointers) params.push_back(&p);
      const Json& launch = kernel["launch"];
      auto dim = [&](const char* field, size_t i) { return static_cast<unsigned>(launch[field].items.at(i).integer()); };
      lastKernel = kernel["name"].text;
      check(cu.cuLaunchKernel(functions[k], dim("grid", 0), dim("grid", 1), dim("grid", 2), dim("block", 0), dim("block", 1), dim("block", 2),
                              static_cast<unsigned>(launch["sharedBytes"].integer()), stream, params.empty() ? nullptr : params.data(), nullptr),
            "launching kernel " + lastKernel);
      if (profile) check(cu.cuEventRecord(events[k + 1], stream), "cuEventRecord");
    }
    // State outputs become the next step's inputs (a no-op where the update was in place).
    for (const Json& out : outputs.items) {
      if (out["role"].text != "state") continue;
      for (const Json& io : inputs.items)
        if (io["name"].text == out["aliases"].text) {
          CUdeviceptr src = pointerOf(out["buffer"].integer()), dst = pointerOf(io["buffer"].integer());
          size_t bytes = numel(out["shape"]) * elementBytes(out["dtype"].text);
          if (src != dst) check(cu.cuMemcpyDtoDAsync(dst, src, bytes, stream), "state copy of " + io["name"].text);
        }
    }
    CUresult r = cu.cuStreamSynchronize(stream);
    if (r != 0) { fprintf(stderr, "error: kernel %s (or one queued before it) failed: %s\n", lastKernel.c_str(), cu.describe(r).c_str()); return 1; }
    for (size_t k = 0; profile && k < functions.size(); k++) {
      float ms = 0;
      check(cu.cuEventElapsedTime(&ms, events[k], events[k + 1]), "cuEventElapsedTime");
      kernelMs[k] += ms;
    }
    for (const Json& out : outputs.items) {
      if (out["role"].text != "user" || numel(out["shape"]) != 1) continue;
      std::string bytes(elementBytes(out["dtype"].text), '\0');
      check(cu.cuMemcpyDtoHAsync(&bytes[0], pointerOf(out["buffer"].integer()), bytes.size(), stream), "download of " + out["name"].text);
      check(cu.cuStreamSynchronize(stream), "download");
      printValues("step " + std::to_string(step + 1) + ": " + out["name"].text, out, bytes);
    }
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  printf("%.3f ms per step (including per-step scalar downloads)\n", ms / std::max(1, steps));
  if (profile) {
    double total = 0;
    for (double k : kernelMs) total += k;
    size_t width = 6;
    for (const Json& kernel : kernels.items) width = std::max(width, kernel["name"].text.size());
    printf("profile (CUDA events around each launch), %d step(s): kernels %.3f ms per step\n", steps, total / std::max(1, steps));
    printf("%-*s  %6s  %10s  %10s  %8s\n", static_cast<int>(width), "kernel", "calls", "total ms", "mean ms", "% kernels");
    for (size_t k = 0; k < functions.size(); k++)
      printf("%-*s  %6d  %10.3f  %10.4f  %7.1f%%\n", static_cast<int>(width), kernels.items[k]["name"].text.c_str(), steps, kernelMs[k], kernelMs[k] / std::max(1, steps),
             total > 0 ? 100.0 * kernelMs[k] / total : 0.0);
    for (CUevent e : events) cu.cuEventDestroy(e);
  }

  std::map<std::string, Tensor> written;  // user outputs by name, the state by its input's name (as `kiln run --output`)
  for (const Json& out : outputs.items) {
    std::string bytes(numel(out["shape"]) * elementBytes(out["dtype"].text), '\0');
    if (!bytes.empty()) check(cu.cuMemcpyDtoHAsync(&bytes[0], pointerOf(out["buffer"].integer()), bytes.size(), stream), "download of " + out["name"].text);
    check(cu.cuStreamSynchronize(stream), "download");
    const bool user = out["role"].text == "user";
    if (user) printValues(out["name"].text, out, bytes);
    written[user ? out["name"].text : out["aliases"].text] = Tensor{out["dtype"].text, shapeOf(out["shape"]), bytes};
  }
  if (!outputFile.empty()) {
    writeSafetensors(outputFile, written);
    printf("wrote %s\n", outputFile.c_str());
  }
  return 0;
}
