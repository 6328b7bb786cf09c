//===- CompileCache.cpp - Compiled layers on disk --------------------------===//
//
// See CompileCache.h.
//
//===----------------------------------------------------------------------===//

#include "CompileCache.h"
#include "moe/Runtime/Error.h"
#include "moe/Runtime/FileIO.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SHA256.h"
#include "llvm/TargetParser/Host.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

using namespace mlir::moe;
namespace rt = ::moe::runtime;

namespace {

/// What identifies this build of the toolchain: the file (executable or
/// shared library) holding this code, its size and modification time.
std::string buildIdentity() {
  Dl_info info;
  if (!dladdr(reinterpret_cast<void *>(&buildIdentity), &info) ||
      !info.dli_fname)
    return "unknown-build";
  struct stat st;
  if (stat(info.dli_fname, &st) != 0)
    return info.dli_fname;
  return std::string(info.dli_fname) + " " + std::to_string(st.st_size) + " " +
         std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

/// The host CPU and its features, as the JIT targets them.
std::string hostIdentity() {
  std::string text = llvm::sys::getHostCPUName().str();
  std::vector<std::string> features;
  for (const auto &feature : llvm::sys::getHostCPUFeatures())
    if (feature.getValue())
      features.push_back(feature.getKey().str());
  std::sort(features.begin(), features.end());
  for (const std::string &f : features)
    text += " +" + f;
  return text;
}

void warn(const std::string &line) {
  std::fprintf(stderr, "moe: warning: %s\n", line.c_str());
}

} // namespace

std::optional<CompileCache> CompileCache::open(const std::string &dir) {
  std::string where = dir;
  if (where.empty())
    if (const char *env = std::getenv("MOE_CACHE_DIR"))
      where = env;
  if (where.empty())
    return std::nullopt;
  std::error_code ec;
  std::filesystem::create_directories(where, ec);
  if (ec || !std::filesystem::is_directory(where))
    throw rt::Error(where, "cannot use it as the compiled-code cache: " +
                               (ec ? ec.message() : "not a directory"));
  return CompileCache(where);
}

std::string CompileCache::keyOf(const std::string &text) const {
  llvm::SHA256 hash;
  for (const std::string &part : {text, buildIdentity(), hostIdentity()}) {
    hash.update(part);
    hash.update(llvm::StringRef("\0", 1));
  }
  std::array<uint8_t, 32> digest = hash.final();
  static const char hex[] = "0123456789abcdef";
  std::string key;
  for (uint8_t byte : digest) {
    key += hex[byte >> 4];
    key += hex[byte & 15];
  }
  return key;
}

std::optional<CompileCache::Hit>
CompileCache::load(const std::string &key,
                   const std::vector<HostExecutable::Symbol> &symbols) {
  std::string meta = dir + "/" + key + ".json", object = dir + "/" + key + ".o";
  if (!std::filesystem::exists(meta))
    return std::nullopt;
  try {
    auto text = llvm::MemoryBuffer::getFile(meta);
    auto bytes = llvm::MemoryBuffer::getFile(object);
    if (!text || !bytes)
      throw rt::Error(object, "cannot read the cache entry");
    nlohmann::json j = nlohmann::json::parse((*text)->getBuffer().str());
    Hit hit;
    hit.hostAccess = j.at("host_access").get<bool>();
    for (const auto &pair : j.at("packed"))
      hit.packed.emplace_back(pair.at(0).get<unsigned>(),
                              pair.at(1).get<int64_t>());
    auto exe = LLVMIRExecutable::loadObject(
        std::move(*bytes), object, j.at("entry").get<std::string>(),
        j.at("arguments").get<size_t>(), symbols);
    if (!exe)
      throw rt::Error(llvm::toString(exe.takeError()));
    hit.executable = std::move(*exe);
    return hit;
  } catch (const std::exception &e) {
    warn(object + ": unusable cache entry, compiling again (" + e.what() +
         ")");
    return std::nullopt;
  }
}

void CompileCache::store(const std::string &key, HostExecutable &exe,
                         size_t numArguments) {
  std::string meta = dir + "/" + key + ".json", object = dir + "/" + key + ".o";
  try {
    // The object first, under a temporary name, then renamed: the metadata
    // written last marks a complete entry.
    std::string temporary = object + ".tmp." + std::to_string(::getpid());
    exe.dumpObject(temporary);
    std::error_code ec;
    std::filesystem::rename(temporary, object, ec);
    if (ec) {
      std::filesystem::remove(temporary, ec);
      throw rt::Error(object, "cannot write the cache entry");
    }
    nlohmann::json j;
    j["entry"] = exe.entryName();
    j["arguments"] = numArguments;
    j["host_access"] = exe.touchesBuffersOnHost();
    j["packed"] = nlohmann::json::array();
    for (const auto &[argument, panel] : exe.packedWeights())
      j["packed"].push_back({argument, panel});
    rt::writeTextFileAtomically(meta, j.dump(2) + "\n");
  } catch (const std::exception &e) {
    warn(std::string("not cached: ") + e.what());
  }
}
