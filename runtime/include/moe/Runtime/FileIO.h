//===- FileIO.h - Atomic file writes ----------------------------*- C++ -*-===//
//
// Every file the runtime writes (npy outputs, statistics, safetensors) goes
// through `writeFileAtomically`: the bytes land in `<path>.tmp.<pid>` first
// and are renamed over `path` only once complete, so a reader never sees a
// half-written file and a failed write leaves nothing behind.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_FILEIO_H
#define MOE_RUNTIME_FILEIO_H

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace moe::runtime {

/// A run of bytes to write.
struct ByteChunk {
  const void *data = nullptr;
  std::size_t size = 0;
};

/// Writes the chunks, in order, to `path` through a temporary file in the
/// same directory that is renamed over `path` when complete (and flushed to
/// disk). On any failure the temporary file is removed, `path` is left as it
/// was, and `Error` is thrown naming `path` and the system's reason.
void writeFileAtomically(const std::string &path,
                         const std::vector<ByteChunk> &chunks);

/// Writes `text` to `path` atomically (see `writeFileAtomically`).
void writeTextFileAtomically(const std::string &path, std::string_view text);

} // namespace moe::runtime

#endif // MOE_RUNTIME_FILEIO_H
