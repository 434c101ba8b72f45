// Kiln standalone CUDA host program: runs a compiled graph with no Node and no Kiln. Reads
// manifest.json (buffers, memory slots, kernels in launch order with their launch shapes),
// weights.safetensors (the state: parameters, optimizer state) and kernels.ptx, binds the
// CUDA driver with dlopen (cuda-driver.h), runs the graph --steps times feeding state outputs
// back into their inputs, prints user outputs and writes every output to --out as raw bytes.
//
// usage: ./run [--steps N] [--input NAME=FILE] [--out DIR] [--dir ARTIFACT_DIR]
// Inputs not given with --input and not in the weights get synthetic values (f32 in [-1, 1),
// i32 i % 10, bool i % 2); a `seed` input gets the step number.

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

#include "cuda-driver.h"

namespace {

// ---- a small JSON reader (objects, arrays, strings, numbers, booleans, null) ----
struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool boolean = false;
  double number = 0;
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

  [[noreturn]] void fail(const std::string& why) {
    fprintf(stderr, "error: %s: invalid JSON at byte %zu: %s\n", file.c_str(), at, why.c_str());
    exit(1);
  }
  void space() {
    while (at < s.size() && (s[at] == ' ' || s[at] == '\n' || s[at] == '\r' || s[at] == '\t')) at++;
  }
  Json value() {
    space();
    if (at >= s.size()) fail("unexpected end");
    Json v;
    char c = s[at];
    if (c == '{') {
      v.kind = Json::Object;
      at++;
      space();
      if (s[at] == '}') { at++; return v; }
      for (;;) {
        space();
        std::string key = string();
        space();
        if (s[at++] != ':') fail("expected ':'");
        v.fields[key] = value();
        space();
        if (s[at] == ',') { at++; continue; }
        if (s[at] == '}') { at++; return v; }
        fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.kind = Json::Array;
      at++;
      space();
      if (s[at] == ']') { at++; return v; }
      for (;;) {
        v.items.push_back(value());
        space();
        if (s[at] == ',') { at++; continue; }
        if (s[at] == ']') { at++; return v; }
        fail("expected ',' or ']'");
      }
    }
    if (c == '"') { v.kind = Json::String; v.text = string(); return v; }
    if (s.compare(at, 4, "true") == 0) { at += 4; v.kind = Json::Bool; v.boolean = true; return v; }
    if (s.compare(at, 5, "false") == 0) { at += 5; v.kind = Json::Bool; return v; }
    if (s.compare(at, 4, "null") == 0) { at += 4; return v; }
    char* end = nullptr;
    v.number = strtod(s.c_str() + at, &end);
    if (end == s.c_str() + at) fail("unexpected character");
    at = end - s.c_str();
    v.kind = Json::Number;
    return v;
  }
  std::string string() {
    if (s[at] != '"') fail("expected a string");
    at++;
    std::string out;
    while (at < s.size() && s[at] != '"') {
      char c = s[at++];
      if (c != '\\') { out += c; continue; }
      char e = s[at++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          unsigned code = std::stoul(s.substr(at, 4), nullptr, 16);
          at += 4;
          if (code < 0x80) out += static_cast<char>(code);
          else if (code < 0x800) { out += static_cast<char>(0xc0 | (code >> 6)); out += static_cast<char>(0x80 | (code & 0x3f)); }
          else { out += static_cast<char>(0xe0 | (code >> 12)); out += static_cast<char>(0x80 | ((code >> 6) & 0x3f)); out += static_cast<char>(0x80 | (code & 0x3f)); }
          break;
        }
        default: out += e;
      }
    }
    if (at >= s.size()) fail("unterminated string");
    at++;
    return out;
  }
};

std::string readFile(const std::string& path, bool required = true) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!required) return "";
    fprintf(stderr, "error: cannot read %s\n", path.c_str());
    exit(1);
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

size_t elementBytes(const std::string& dtype) { return dtype == "bool" ? 1 : 4; }

size_t numel(const Json& shape) {
  size_t n = 1;
  for (const Json& d : shape.items) n *= static_cast<size_t>(d.integer());
  return n;
}

std::string shapeText(const Json& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.items.size(); i++) out += (i ? "," : "") + std::to_string(shape.items[i].integer());
  return out + "]";
}

const char* safetensorsDtype(const std::string& dtype) { return dtype == "f32" ? "F32" : dtype == "i32" ? "I32" : "BOOL"; }

struct Weights {
  std::map<std::string, std::string> bytes;  // name -> raw little-endian data
};

Weights readWeights(const std::string& path, const Json& inputs) {
  Weights w;
  std::string file = readFile(path);
  if (file.size() < 8) { fprintf(stderr, "error: %s: too short for a safetensors file\n", path.c_str()); exit(1); }
  uint64_t headerBytes = 0;
  for (int i = 7; i >= 0; i--) headerBytes = (headerBytes << 8) | static_cast<unsigned char>(file[i]);
  if (8 + headerBytes > file.size()) { fprintf(stderr, "error: %s: header length %llu exceeds the file\n", path.c_str(), (unsigned long long)headerBytes); exit(1); }
  std::string headerText = file.substr(8, headerBytes);
  JsonParser parser{headerText, 0, path};
  Json header = parser.value();
  const size_t dataStart = 8 + headerBytes;
  for (const Json& io : inputs.items) {
    if (io["role"].text != "state") continue;
    const std::string& name = io["name"].text;
    if (!header.has(name)) { fprintf(stderr, "error: %s: no tensor '%s' (a state input of the graph)\n", path.c_str(), name.c_str()); exit(1); }
    const Json& t = header[name];
    if (t["dtype"].text != safetensorsDtype(io["dtype"].text) || shapeText(t["shape"]) != shapeText(io["shape"])) {
      fprintf(stderr, "error: %s: tensor '%s' is %s%s, the graph expects %s%s\n", path.c_str(), name.c_str(), t["dtype"].text.c_str(), shapeText(t["shape"]).c_str(),
              safetensorsDtype(io["dtype"].text), shapeText(io["shape"]).c_str());
      exit(1);
    }
    size_t begin = dataStart + static_cast<size_t>(t["data_offsets"].items[0].integer());
    size_t end = dataStart + static_cast<size_t>(t["data_offsets"].items[1].integer());
    if (end > file.size() || end - begin != numel(io["shape"]) * elementBytes(io["dtype"].text)) { fprintf(stderr, "error: %s: tensor '%s' has bad data_offsets\n", path.c_str(), name.c_str()); exit(1); }
    w.bytes[name] = file.substr(begin, end - begin);
  }
  return w;
}

std::string syntheticInput(const Json& io, uint32_t salt) {
  size_t n = numel(io["shape"]);
  const std::string& dtype = io["dtype"].text;
  std::string out(n * elementBytes(dtype), '\0');
  uint32_t state = 0x9e3779b9u ^ salt;
  for (size_t i = 0; i < n; i++) {
    if (dtype == "f32") {
      state = state * 1664525u + 1013904223u;
      float v = static_cast<float>(state >> 8) / 16777216.0f * 2.0f - 1.0f;
      memcpy(&out[4 * i], &v, 4);
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
  printf("%s %s%s:", label.c_str(), dtype.c_str(), shapeText(io["shape"]).c_str());
  for (size_t i = 0; i < n && i < 8; i++) {
    if (dtype == "f32") { float v; memcpy(&v, &bytes[4 * i], 4); printf(" %.6g", v); }
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
  std::string dir = ".";
  std::string outDir;
  std::map<std::string, std::string> inputFiles;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) { fprintf(stderr, "error: %s needs a value\n", a.c_str()); exit(2); }
      return argv[++i];
    };
    if (a == "--steps") steps = atoi(next().c_str());
    else if (a == "--dir") dir = next();
    else if (a == "--out") outDir = next();
    else if (a == "--input") {
      std::string spec = next();
      size_t eq = spec.find('=');
      if (eq == std::string::npos) { fprintf(stderr, "error: --input expects NAME=FILE, got %s\n", spec.c_str()); return 2; }
      inputFiles[spec.substr(0, eq)] = spec.substr(eq + 1);
    } else if (a == "--help" || a == "-h") {
      printf("usage: %s [--steps N] [--input NAME=FILE] [--out DIR] [--dir ARTIFACT_DIR]\n", argv[0]);
      return 0;
    } else { fprintf(stderr, "error: unknown argument %s (try --help)\n", a.c_str()); return 2; }
  }

  const std::string manifestPath = dir + "/manifest.json";
  std::string manifestText = readFile(manifestPath);
  JsonParser parser{manifestText, 0, manifestPath};
  Json m = parser.value();
  if (m["target"].text != "cuda") { fprintf(stderr, "error: %s: target is '%s', this host program runs 'cuda' artifacts\n", manifestPath.c_str(), m["target"].text.c_str()); return 1; }
  const Json& buffers = m["buffers"];
  const Json& inputs = m["inputs"];
  const Json& outputs = m["outputs"];
  const Json& kernels = m["kernels"];
  Weights weights = m.has("weights") ? readWeights(dir + "/" + m["weights"].text, inputs) : Weights{};

  std::map<std::string, std::string> hostInputs;
  for (const Json& io : inputs.items) {
    const std::string& name = io["name"].text;
    size_t bytes = numel(io["shape"]) * elementBytes(io["dtype"].text);
    if (inputFiles.count(name)) {
      hostInputs[name] = readFile(inputFiles[name]);
      if (hostInputs[name].size() != bytes) { fprintf(stderr, "error: --input %s: %zu bytes, expected %zu (%s%s)\n", name.c_str(), hostInputs[name].size(), bytes, io["dtype"].text.c_str(), shapeText(io["shape"]).c_str()); return 1; }
    } else if (weights.bytes.count(name)) hostInputs[name] = weights.bytes[name];
    else hostInputs[name] = syntheticInput(io, static_cast<uint32_t>(hostInputs.size()));
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
  auto started = std::chrono::steady_clock::now();
  for (int step = 0; step < steps; step++) {
    for (const Json& io : inputs.items)
      if (io["role"].text == "seed") {
        int32_t seed = step;
        check(cu.cuMemcpyHtoDAsync(pointerOf(io["buffer"].integer()), &seed, 4, stream), "upload of the seed");
      }
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

  for (const Json& out : outputs.items) {
    std::string bytes(numel(out["shape"]) * elementBytes(out["dtype"].text), '\0');
    check(cu.cuMemcpyDtoHAsync(&bytes[0], pointerOf(out["buffer"].integer()), bytes.size(), stream), "download of " + out["name"].text);
    check(cu.cuStreamSynchronize(stream), "download");
    if (out["role"].text == "user") printValues(out["name"].text, out, bytes);
    if (!outDir.empty()) {
      std::string path = outDir + "/" + out["name"].text + ".bin";
      std::ofstream file(path, std::ios::binary);
      if (!file) { fprintf(stderr, "error: cannot write %s\n", path.c_str()); return 1; }
      file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
  }
  if (!outDir.empty()) printf("wrote %zu output(s) to %s\n", outputs.items.size(), outDir.c_str());
  return 0;
}
