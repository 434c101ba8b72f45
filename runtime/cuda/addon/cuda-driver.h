// The slice of the CUDA driver API and NVRTC that Kiln uses, declared by hand and bound at run
// time with dlopen/dlsym: the addon and the standalone host program build without CUDA
// headers, a GPU or a driver, and fail with a clear message where libcuda.so.1 is missing.
// Shared by runtime/cuda/addon/kiln-cuda.cc and the standalone artifact's main.cpp.
#pragma once

#include <dlfcn.h>
#include <cstddef>
#include <cstdio>
#include <string>
#include <type_traits>

typedef int CUresult;  // CUDA_SUCCESS == 0
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;  // the _v2 API's 64-bit device pointer
typedef struct CUctx_st* CUcontext;
typedef struct CUmod_st* CUmodule;
typedef struct CUfunc_st* CUfunction;
typedef struct CUstream_st* CUstream;
typedef struct CUevent_st* CUevent;
typedef int nvrtcResult;  // NVRTC_SUCCESS == 0
typedef struct _nvrtcProgram* nvrtcProgram;

enum { KILN_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, KILN_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76 };

struct KilnCudaDriver {
  void* lib = nullptr;
  CUresult (*cuInit)(unsigned) = nullptr;
  CUresult (*cuDeviceGetCount)(int*) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice*, int) = nullptr;
  CUresult (*cuDeviceGetName)(char*, int, CUdevice) = nullptr;
  CUresult (*cuDeviceGetAttribute)(int*, int, CUdevice) = nullptr;
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*cuCtxSetCurrent)(CUcontext) = nullptr;
  CUresult (*cuModuleLoadData)(CUmodule*, const void*) = nullptr;
  CUresult (*cuModuleUnload)(CUmodule) = nullptr;
  CUresult (*cuModuleGetFunction)(CUfunction*, CUmodule, const char*) = nullptr;
  CUresult (*cuMemAlloc)(CUdeviceptr*, size_t) = nullptr;
  CUresult (*cuMemFree)(CUdeviceptr) = nullptr;
  CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t) = nullptr;
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void*, size_t, CUstream) = nullptr;
  CUresult (*cuMemcpyDtoHAsync)(void*, CUdeviceptr, size_t, CUstream) = nullptr;
  CUresult (*cuMemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream) = nullptr;
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void**, void**) = nullptr;
  CUresult (*cuStreamCreate)(CUstream*, unsigned) = nullptr;
  CUresult (*cuStreamSynchronize)(CUstream) = nullptr;
  // Events time kernels on the stream (exe.profile, the standalone program's --profile).
  CUresult (*cuEventCreate)(CUevent*, unsigned) = nullptr;
  CUresult (*cuEventRecord)(CUevent, CUstream) = nullptr;
  CUresult (*cuEventSynchronize)(CUevent) = nullptr;
  CUresult (*cuEventElapsedTime)(float*, CUevent, CUevent) = nullptr;
  CUresult (*cuEventDestroy)(CUevent) = nullptr;
  CUresult (*cuGetErrorString)(CUresult, const char**) = nullptr;
  CUresult (*cuGetErrorName)(CUresult, const char**) = nullptr;

  /** Binds every entry point; on failure returns false and says why in `error`. */
  bool load(std::string& error) {
    if (lib) return true;
    void* handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* why = dlerror();
      error = std::string("no CUDA driver (libcuda.so.1 not found: ") + (why ? why : "dlopen failed") + ")";
      return false;
    }
    bool ok = true;
    auto bind = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(handle, name));
      if (!fn && ok) {
        ok = false;
        error = std::string("the CUDA driver lacks ") + name + " (driver too old?)";
      }
    };
    bind(cuInit, "cuInit");
    bind(cuDeviceGetCount, "cuDeviceGetCount");
    bind(cuDeviceGet, "cuDeviceGet");
    bind(cuDeviceGetName, "cuDeviceGetName");
    bind(cuDeviceGetAttribute, "cuDeviceGetAttribute");
    bind(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    bind(cuCtxSetCurrent, "cuCtxSetCurrent");
    bind(cuModuleLoadData, "cuModuleLoadData");
    bind(cuModuleUnload, "cuModuleUnload");
    bind(cuModuleGetFunction, "cuModuleGetFunction");
    bind(cuMemAlloc, "cuMemAlloc_v2");
    bind(cuMemFree, "cuMemFree_v2");
    bind(cuMemsetD8, "cuMemsetD8_v2");
    bind(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
    bind(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
    bind(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
    bind(cuLaunchKernel, "cuLaunchKernel");
    bind(cuStreamCreate, "cuStreamCreate");
    bind(cuStreamSynchronize, "cuStreamSynchronize");
    bind(cuEventCreate, "cuEventCreate");
    bind(cuEventRecord, "cuEventRecord");
    bind(cuEventSynchronize, "cuEventSynchronize");
    bind(cuEventElapsedTime, "cuEventElapsedTime");
    bind(cuEventDestroy, "cuEventDestroy_v2");
    bind(cuGetErrorString, "cuGetErrorString");
    bind(cuGetErrorName, "cuGetErrorName");
    if (!ok) {
      dlclose(handle);
      return false;
    }
    lib = handle;
    return true;
  }

  /** "CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access was encountered)". */
  std::string describe(CUresult r) const {
    const char* name = nullptr;
    const char* text = nullptr;
    if (cuGetErrorName) cuGetErrorName(r, &name);
    if (cuGetErrorString) cuGetErrorString(r, &text);
    std::string out = name ? name : "CUDA error " + std::to_string(r);
    if (text) out += std::string(" (") + text + ")";
    return out;
  }
};

/** NVRTC, for machines with a driver but no nvcc: CUDA C → PTX in process. */
struct KilnNvrtc {
  void* lib = nullptr;
  nvrtcResult (*create)(nvrtcProgram*, const char*, const char*, int, const char* const*, const char* const*) = nullptr;
  nvrtcResult (*compile)(nvrtcProgram, int, const char* const*) = nullptr;
  nvrtcResult (*ptxSize)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*ptx)(nvrtcProgram, char*) = nullptr;
  nvrtcResult (*logSize)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*log)(nvrtcProgram, char*) = nullptr;
  nvrtcResult (*destroy)(nvrtcProgram*) = nullptr;

  bool load(std::string& error) {
    if (lib) return true;
    const char* names[] = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"};
    for (const char* n : names)
      if ((lib = dlopen(n, RTLD_NOW | RTLD_LOCAL))) break;
    if (!lib) {
      error = "no NVRTC (libnvrtc.so not found) and no nvcc: cannot compile CUDA C to PTX";
      return false;
    }
    create = reinterpret_cast<decltype(create)>(dlsym(lib, "nvrtcCreateProgram"));
    compile = reinterpret_cast<decltype(compile)>(dlsym(lib, "nvrtcCompileProgram"));
    ptxSize = reinterpret_cast<decltype(ptxSize)>(dlsym(lib, "nvrtcGetPTXSize"));
    ptx = reinterpret_cast<decltype(ptx)>(dlsym(lib, "nvrtcGetPTX"));
    logSize = reinterpret_cast<decltype(logSize)>(dlsym(lib, "nvrtcGetProgramLogSize"));
    log = reinterpret_cast<decltype(log)>(dlsym(lib, "nvrtcGetProgramLog"));
    destroy = reinterpret_cast<decltype(destroy)>(dlsym(lib, "nvrtcDestroyProgram"));
    if (!create || !compile || !ptxSize || !ptx || !logSize || !log || !destroy) {
      error = "libnvrtc.so lacks the NVRTC entry points Kiln needs";
      dlclose(lib);
      lib = nullptr;
      return false;
    }
    return true;
  }
};
