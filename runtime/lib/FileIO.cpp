//===- FileIO.cpp - Atomic file writes ------------------------------------===//
//
// The temporary-file-and-rename scheme shared by every writer of the
// runtime, on POSIX file descriptors.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/FileIO.h"

#include "moe/Runtime/Error.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

using namespace moe::runtime;

namespace {

/// The system's description of `errnum`.
std::string reason(int errnum) { return std::strerror(errnum); }

/// Owns the temporary file until it is committed: closes the descriptor and
/// removes the file unless `commit` succeeded.
class TemporaryFile {
public:
  explicit TemporaryFile(const std::string &target)
      : target(target),
        path(target + ".tmp." + std::to_string(static_cast<long>(getpid()))) {
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
      throw Error(target, "cannot write the file: " + reason(errno));
  }
  TemporaryFile(const TemporaryFile &) = delete;
  TemporaryFile &operator=(const TemporaryFile &) = delete;

  ~TemporaryFile() {
    if (fd >= 0)
      ::close(fd);
    if (!committed)
      ::unlink(path.c_str());
  }

  /// Appends `size` bytes, retrying partial and interrupted writes.
  void write(const void *data, std::size_t size) {
    const char *bytes = static_cast<const char *>(data);
    while (size > 0) {
      ssize_t written = ::write(fd, bytes, size);
      if (written < 0) {
        if (errno == EINTR)
          continue;
        throw Error(target, "cannot write the file: " + reason(errno));
      }
      bytes += written;
      size -= static_cast<std::size_t>(written);
    }
  }

  /// Flushes, closes and renames the temporary file over the target.
  void commit() {
    if (::fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
      throw Error(target, "cannot write the file: " + reason(errno));
    int closing = fd;
    fd = -1;
    if (::close(closing) != 0)
      throw Error(target, "cannot write the file: " + reason(errno));
    if (std::rename(path.c_str(), target.c_str()) != 0)
      throw Error(target, "cannot replace the file: " + reason(errno));
    committed = true;
  }

private:
  std::string target;
  std::string path;
  int fd = -1;
  bool committed = false;
};

} // namespace

void moe::runtime::writeFileAtomically(const std::string &path,
                                       const std::vector<ByteChunk> &chunks) {
  TemporaryFile file(path);
  for (const ByteChunk &chunk : chunks)
    file.write(chunk.data, chunk.size);
  file.commit();
}

void moe::runtime::writeTextFileAtomically(const std::string &path,
                                           std::string_view text) {
  writeFileAtomically(path, {{text.data(), text.size()}});
}
