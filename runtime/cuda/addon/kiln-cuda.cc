// Kiln's CUDA addon (node-addon-api): binds the driver API at run time (cuda-driver.h), holds
// one device's primary context and one stream, and exposes what runtime/cuda/index.ts needs —
// modules from PTX (or CUDA C through NVRTC), device memory, copies, launches. Every error
// is a JS Error whose message names the CUDA error and, for launches, the kernel.

#include <napi.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "cuda-driver.h"

namespace {

KilnCudaDriver driver;
KilnNvrtc nvrtc;
bool ready = false;
CUdevice device = 0;
CUcontext context = nullptr;
CUstream stream = nullptr;
std::vector<CUmodule> modules;
std::vector<CUfunction> functions;
std::vector<std::string> functionNames;
// Events by handle (an index; a destroyed one leaves a null slot).
std::vector<CUevent> events;
// Kernels run asynchronously: an error surfaces at the next synchronization, so remember
// which kernel was launched last to name it.
std::string lastKernel;

[[noreturn]] void fail(Napi::Env env, const std::string& message) { throw Napi::Error::New(env, message); }

void check(Napi::Env env, CUresult r, const std::string& what) {
  if (r != 0) fail(env, "cuda: " + what + ": " + driver.describe(r));
}

void requireReady(Napi::Env env) {
  if (!ready) fail(env, "cuda: not initialized (call init() first)");
}

CUdeviceptr pointerArg(const Napi::Value& v) {
  bool lossless = true;
  return static_cast<CUdeviceptr>(v.As<Napi::BigInt>().Uint64Value(&lossless));
}

/** init(): loads the driver, picks device 0 and its primary context; returns the device's description. */
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ready) {
    std::string error;
    if (!driver.load(error)) fail(env, error);
    check(env, driver.cuInit(0), "cuInit");
    int count = 0;
    check(env, driver.cuDeviceGetCount(&count), "cuDeviceGetCount");
    if (count == 0) fail(env, "cuda: the driver reports no CUDA device");
    check(env, driver.cuDeviceGet(&device, 0), "cuDeviceGet");
    check(env, driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
    check(env, driver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
    check(env, driver.cuStreamCreate(&stream, 0), "cuStreamCreate");
    ready = true;
  }
  char name[256] = {0};
  driver.cuDeviceGetName(name, sizeof name, device);
  int major = 0, minor = 0;
  driver.cuDeviceGetAttribute(&major, KILN_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device);
  driver.cuDeviceGetAttribute(&minor, KILN_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device);
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", std::string(name));
  out.Set("major", major);
  out.Set("minor", minor);
  return out;
}

/** nvrtcCompile(source, fileName, arch): PTX text, or an Error with NVRTC's log. */
Napi::Value NvrtcCompile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string error;
  if (!nvrtc.load(error)) fail(env, error);
  std::string source = info[0].As<Napi::String>();
  std::string fileName = info[1].As<Napi::String>();
  std::string archOption = "--gpu-architecture=" + info[2].As<Napi::String>().Utf8Value();
  nvrtcProgram program = nullptr;
  if (nvrtc.create(&program, source.c_str(), fileName.c_str(), 0, nullptr, nullptr) != 0) fail(env, "nvrtc: cannot create a program");
  // The toolkit's include folder, when there is one, gives the prelude cuda_fp16.h / cuda_bf16.h;
  // without it the prelude's header-free stand-ins are used (codegen/cuda/prelude.ts).
  std::vector<std::string> optionText = {archOption, "--std=c++17"};
  const char* roots[] = {std::getenv("CUDA_PATH"), std::getenv("CUDA_HOME"), "/usr/local/cuda"};
  for (const char* root : roots) {
    struct stat found;
    if (root == nullptr || stat((std::string(root) + "/include/cuda_fp16.h").c_str(), &found) != 0) continue;
    optionText.push_back("--include-path=" + std::string(root) + "/include");
    break;
  }
  std::vector<const char*> options;
  for (const std::string& o : optionText) options.push_back(o.c_str());
  nvrtcResult compiled = nvrtc.compile(program, (int)options.size(), options.data());
  size_t logSize = 0;
  nvrtc.logSize(program, &logSize);
  std::string log(logSize, '\0');
  if (logSize > 0) nvrtc.log(program, log.data());
  if (compiled != 0) {
    nvrtc.destroy(&program);
    fail(env, "nvrtc: " + fileName + " does not compile:\n" + log);
  }
  size_t ptxSize = 0;
  nvrtc.ptxSize(program, &ptxSize);
  std::string ptx(ptxSize, '\0');
  nvrtc.ptx(program, ptx.data());
  nvrtc.destroy(&program);
  if (!ptx.empty() && ptx.back() == '\0') ptx.pop_back();
  return Napi::String::New(env, ptx);
}

/** loadModule(ptx): a module handle. */
Napi::Value LoadModule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireReady(env);
  std::string ptx = info[0].As<Napi::String>();
  CUmodule module = nullptr;
  check(env, driver.cuModuleLoadData(&module, ptx.c_str()), "cuModuleLoadData (loading PTX)");
  modules.push_back(module);
  return Napi::Number::New(env, static_cast<double>(modules.size() - 1));
}

/** getFunction(module, name): a function handle. */
Napi::Value GetFunction(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireReady(env);
  uint32_t m = info[0].As<Napi::Number>().Uint32Value();
  std::string name = info[1].As<Napi::String>();
  if (m >= modules.size()) fail(env, "cuda: unknown module handle");
  CUfunction fn = nullptr;
  check(env, driver.cuModuleGetFunction(&fn, modules[m], name.c_str()), "cuModuleGetFunction(" + name + ")");
  functions.push_back(fn);
  functionNames.push_back(name);
  return Napi::Number::New(env, static_cast<double>(functions.size() - 1));
}

/** alloc(bytes): a zero-filled device allocation as a bigint pointer. */
Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireReady(env);
  size_t bytes = static_cast<size_t>(info[0].As<Napi::Number>().Int64Value());
  CUdeviceptr ptr = 0;
  check(env, driver.cuMemAlloc(&ptr, bytes == 0 ? 4 : bytes), "cuMemAlloc(" + std::to_string(bytes) + " bytes)");
  check(env, driver.cuMemsetD8(ptr, 0, bytes == 0 ? 4 : bytes), "cuMemsetD8");
  return Napi::BigInt::New(env, static_cast<uint64_t>(ptr));
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireReady(env);
  check(env, driver.cuMemFree(pointerArg(info[0])), "cuMemFree");
  return env.Undefined();
}

/** upload(ptr, typedArray): host → device, on the stream, then waits. */
Napi::Value Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireReady(env);
  Napi::TypedArray data = info[1].As<Napi::TypedArray>();
  const uint8_t* bytes = static_cast<const uint8_t*>(data.ArrayBuffer().Data()) + data.ByteOffset();
  check(env, driver.cuMemcpyHtoDAsync(pointerArg(info[0]), bytes, data.ByteLength(), stream), "cuMemcpyHtoD");
  check(env, driver.cuStreamSynchronize(stream), "cuStreamSynchronize after an upload");
  return env.Undefined();
}

/** download(ptr, typedArray): device → host after every launch queued before it. */
Napi::Value Download(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireReady(env);
  Napi::TypedArray data = info[1].As<Napi::TypedArray>();
  uint8_t* bytes = static_cast<uint8_t*>(data.ArrayBuffer().Data()) + data.ByteOffset();
  check(env, driver.cuMemcpyDtoHAsync(bytes, pointerArg(info[0]), data.ByteLength(), stream), "cuMemcpyDtoH");
  CUresult r = driver.cuStreamSynchronize(stream);
  if (r != 0) fail(env, "cuda: kernel " + lastKernel + " failed: " + driver.describe(r));
  return env.Undefined();
}

/** copy(dst, src, bytes): device → device on the stream. */
Napi::Value Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireReady(env);
  size_t bytes = static_cast<size_t>(info[2].As<Napi::Number>().Int64Value());
  check(env, driver.cuMemcpyDtoDAsync(pointerArg(info[0]), pointerArg(info[1]), bytes, stream), "cuMemcpyDtoD");
  return env.Undefined();
}

/** launch(fn, [gx,gy,gz], [bx,by,bz], sharedBytes, [ptr…]): queues a kernel on the stream. */
Napi::Value Launch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireReady(env);
  uint32_t f = info[0].As<Napi::Number>().Uint32Value();
  if (f >= functions.size()) fail(env, "cuda: unknown function handle");
  Napi::Array grid = info[1].As<Napi::Array>();
  Napi::Array block = info[2].As<Napi::Array>();
  uint32_t shared = info[3].As<Napi::Number>().Uint32Value();
  Napi::Array args = info[4].As<Napi::Array>();
  std::vector<CUdeviceptr> pointers(args.Length());
  std::vector<void*> params(args.Length());
  for (uint32_t i = 0; i < args.Length(); i++) {
    pointers[i] = pointerArg(args.Get(i));
    params[i] = &pointers[i];
  }
  auto dim = [](Napi::Array a, uint32_t i) { return a.Get(i).As<Napi::Number>().Uint32Value(); };
  lastKernel = functionNames[f];
  CUresult r = driver.cuLaunchKernel(functions[f], dim(grid, 0), dim(grid, 1), dim(grid, 2), dim(block, 0), dim(block, 1), dim(block, 2), shared, stream,
                                     params.empty() ? nullptr : params.data(), nullptr);
  if (r != 0) fail(env, "cuda: launching kernel " + lastKernel + ": " + driver.describe(r));
  return env.Undefined();
}

/** synchronize(): waits for the stream; a failed kernel is named in the error. */
Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireReady(env);
  CUresult r = driver.cuStreamSynchronize(stream);
  if (r != 0) fail(env, "cuda: kernel " + lastKernel + " failed: " + driver.describe(r));
  return env.Undefined();
}

CUevent eventArg(Napi::Env env, const Napi::Value& v) {
  uint32_t h = v.As<Napi::Number>().Uint32Value();
  if (h >= events.size() || events[h] == nullptr) fail(env, "cuda: unknown event handle");
  return events[h];
}

/** eventCreate(): a new event (default flags: it records time); returns its handle. */
Napi::Value EventCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireReady(env);
  CUevent e = nullptr;
  check(env, driver.cuEventCreate(&e, 0), "cuEventCreate");
  events.push_back(e);
  return Napi::Number::New(env, static_cast<double>(events.size() - 1));
}

/** eventRecord(event): records it on the stream, after the work queued so far. */
Napi::Value EventRecord(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireReady(env);
  check(env, driver.cuEventRecord(eventArg(env, info[0]), stream), "cuEventRecord");
  return env.Undefined();
}

/** eventElapsed(start, end): milliseconds between two recorded events, waiting for `end`. */
Napi::Value EventElapsed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireReady(env);
  CUevent start = eventArg(env, info[0]);
  CUevent end = eventArg(env, info[1]);
  CUresult r = driver.cuEventSynchronize(end);
  if (r != 0) fail(env, "cuda: kernel " + lastKernel + " failed: " + driver.describe(r));
  float ms = 0;
  check(env, driver.cuEventElapsedTime(&ms, start, end), "cuEventElapsedTime");
  return Napi::Number::New(env, ms);
}

/** eventDestroy(event). */
Napi::Value EventDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireReady(env);
  uint32_t h = info[0].As<Napi::Number>().Uint32Value();
  check(env, driver.cuEventDestroy(eventArg(env, info[0])), "cuEventDestroy");
  events[h] = nullptr;
  return env.Undefined();
}

Napi::Object Register(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("nvrtcCompile", Napi::Function::New(env, NvrtcCompile));
  exports.Set("loadModule", Napi::Function::New(env, LoadModule));
  exports.Set("getFunction", Napi::Function::New(env, GetFunction));
  exports.Set("alloc", Napi::Function::New(env, Alloc));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("upload", Napi::Function::New(env, Upload));
  exports.Set("download", Napi::Function::New(env, Download));
  exports.Set("copy", Napi::Function::New(env, Copy));
  exports.Set("launch", Napi::Function::New(env, Launch));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize));
  exports.Set("eventCreate", Napi::Function::New(env, EventCreate));
  exports.Set("eventRecord", Napi::Function::New(env, EventRecord));
  exports.Set("eventElapsed", Napi::Function::New(env, EventElapsed));
  exports.Set("eventDestroy", Napi::Function::New(env, EventDestroy));
  return exports;
}

}  // namespace

NODE_API_MODULE(kiln_cuda, Register)
