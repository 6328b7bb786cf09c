//===- CompileCache.h - Compiled layers on disk ---------------*- C++ -*-===//
//
// The opt-in cache of compiled host code (CompileOptions::cacheDir or
// $MOE_CACHE_DIR): per key, the object code the JIT produced
// (`<key>.o`) and what calling it needs (`<key>.json`: entry, argument
// count, packed weights, host access). The key hashes the module, the
// pipeline and its options, the host CPU and its features, and the build of
// the toolchain itself, so a changed compiler or machine never reuses
// stale code. Private to lib/Runner.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNNER_COMPILECACHE_H
#define MOE_RUNNER_COMPILECACHE_H

#include "moe/Runner/HostJIT.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mlir::moe {

class CompileCache {
public:
  /// The cache in `dir`, or in $MOE_CACHE_DIR when `dir` is empty;
  /// std::nullopt when both are empty. Creates the directory; throws
  /// runtime::Error naming it when that fails.
  static std::optional<CompileCache> open(const std::string &dir);

  /// The key of a compilation described by `text`.
  std::string keyOf(const std::string &text) const;

  struct Hit {
    std::unique_ptr<LLVMIRExecutable> executable;
    std::vector<std::pair<unsigned, int64_t>> packed;
    bool hostAccess = true;
  };
  /// The cached code of `key` loaded and linked against `symbols`, or
  /// std::nullopt when there is none (an unusable entry is reported on
  /// stderr in one line and treated as absent).
  std::optional<Hit> load(const std::string &key,
                          const std::vector<HostExecutable::Symbol> &symbols);

  /// Stores `exe` (compiled with keepObject) under `key`, taking
  /// `numArguments` descriptors; a failure to write is reported on stderr
  /// in one line and otherwise ignored.
  void store(const std::string &key, HostExecutable &exe,
             size_t numArguments);

private:
  explicit CompileCache(std::string dir) : dir(std::move(dir)) {}
  std::string dir;
};

} // namespace mlir::moe

#endif // MOE_RUNNER_COMPILECACHE_H
