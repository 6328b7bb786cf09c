//===- EntryPoints.cpp - C entry points that compiled layers call --*- C++
//-*-===//
//
// `moe_rt_all_to_all_<type>(src, dst, ranks, split_dim, concat_dim)` and
// `moe_rt_all_reduce_<type>(data, ranks)` over unranked memref descriptors:
// the all-to-all packs the chunks of `src` along split_dim, exchanges them
// with the active engine and lays the received chunks side by side along
// concat_dim of `dst`. `moe_rt_exchange_rows_<type>` and
// `moe_rt_return_rows_<type>` are the variable-size exchange of packed
// expert rows (counts first, then exactly the rows), with the regrouping
// between the rank-major order of the wire and the expert-major order of
// the expert kernels. Errors cannot unwind through compiled code: they are
// printed as one line and the process exits with status 1.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/EntryPoints.h"
#include "moe/Runtime/Error.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace moe::runtime {
namespace {

Collectives *active = nullptr;
/// With data-parallel replicas: the expert-parallel group of this rank.
Collectives *activeGroup = nullptr;
void *(*deviceAllocate)(size_t) = nullptr;
void (*deviceRelease)(void *) = nullptr;

/// A staging buffer the active engine can reach: host memory, or memory of
/// the device staging allocator for engines that need it.
class Staging {
public:
  explicit Staging(size_t bytes) {
    if (active && active->needsDeviceBuffers()) {
      if (!deviceAllocate)
        throw Error("moe_rt: error: the " + active->name() +
                    " engine needs device memory to stage exchanges, and no "
                    "GPU backend provides it");
      device = deviceAllocate(bytes ? bytes : 1);
    } else {
      host.resize(bytes);
    }
  }
  ~Staging() {
    if (device)
      deviceRelease(device);
  }
  Staging(const Staging &) = delete;
  Staging &operator=(const Staging &) = delete;
  char *data() { return device ? static_cast<char *>(device) : host.data(); }

private:
  std::vector<char> host;
  void *device = nullptr;
};

/// MLIR's C interface of an unranked memref.
struct UnrankedMemRef {
  int64_t rank;
  void *descriptor;
};

/// A ranked descriptor read out of an unranked one: a contiguous row-major
/// buffer is required.
struct Buffer {
  char *data;
  std::vector<int64_t> shape;
};

Buffer view(const UnrankedMemRef *memref, size_t elementBytes,
            const char *what) {
  const auto *words = static_cast<const int64_t *>(memref->descriptor);
  int64_t rank = memref->rank;
  Buffer buffer;
  auto *aligned = reinterpret_cast<char *>(words[1]);
  buffer.data = aligned + words[2] * static_cast<int64_t>(elementBytes);
  buffer.shape.assign(words + 3, words + 3 + rank);
  int64_t stride = 1;
  for (int64_t i = rank - 1; i >= 0; --i) {
    if (words[3 + rank + i] != stride && buffer.shape[i] != 1)
      throw Error(std::string("moe_rt: error: ") + what +
                  " buffer is not contiguous");
    stride *= buffer.shape[i];
  }
  return buffer;
}

/// The engine of an exchange over `ranks` ranks: the expert-parallel group
/// when replicas split the ranks and `ranks` is its size, else all ranks.
Collectives &engine(int64_t ranks) {
  if (!active)
    throw Error("moe_rt: error: a sharded layer ran without a collectives "
                "engine (run it with moe-run --shards under mpirun)");
  if (activeGroup && activeGroup->size() == ranks)
    return *activeGroup;
  if (active->size() != ranks)
    throw Error("moe_rt: error: the layer was sharded over " +
                std::to_string(ranks) + " ranks but runs on " +
                std::to_string(active->size()));
  return *active;
}

/// Runs `body`, turning an Error into a one-line message and exit(1): no
/// exception may cross the compiled caller.
template <typename Fn> void guarded(Fn body) {
  try {
    body();
  } catch (const std::exception &e) {
    std::fprintf(stderr, "%s\n", e.what());
    std::fflush(stderr);
    std::exit(1);
  }
}

int64_t product(const std::vector<int64_t> &v, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i)
    p *= v[i];
  return p;
}

void allToAll(const UnrankedMemRef *src, const UnrankedMemRef *dst,
              size_t elementBytes, int64_t ranks, int64_t split,
              int64_t concat) {
  guarded([&] {
    Collectives &c = engine(ranks);
    Buffer in = view(src, elementBytes, "all_to_all source");
    Buffer out = view(dst, elementBytes, "all_to_all result");
    auto n = static_cast<size_t>(ranks);
    size_t bytes = static_cast<size_t>(product(in.shape, 0, in.shape.size())) *
                   elementBytes;
    size_t chunk = bytes / n;
    auto s = static_cast<size_t>(split), k = static_cast<size_t>(concat);
    // Pack: chunk i holds the i-th slice along split_dim, row-major.
    Staging send(bytes), recv(bytes);
    {
      size_t outer = static_cast<size_t>(product(in.shape, 0, s));
      size_t part = static_cast<size_t>(in.shape[s]) / n;
      size_t inner =
          static_cast<size_t>(product(in.shape, s + 1, in.shape.size())) *
          elementBytes;
      for (size_t o = 0; o < outer; ++o)
        for (size_t i = 0; i < n; ++i)
          std::memcpy(send.data() + i * chunk + o * part * inner,
                      in.data + (o * n * part + i * part) * inner,
                      part * inner);
    }
    c.allToAll(send.data(), recv.data(), chunk);
    // Unpack: the chunk from rank i is the i-th slice along concat_dim.
    {
      size_t outer = static_cast<size_t>(product(out.shape, 0, k));
      size_t part = static_cast<size_t>(out.shape[k]) / n;
      size_t inner =
          static_cast<size_t>(product(out.shape, k + 1, out.shape.size())) *
          elementBytes;
      for (size_t o = 0; o < outer; ++o)
        for (size_t i = 0; i < n; ++i)
          std::memcpy(out.data + (o * n * part + i * part) * inner,
                      recv.data() + i * chunk + o * part * inner, part * inner);
    }
  });
}

void allReduce(const UnrankedMemRef *data, size_t elementBytes, DType dtype,
               int64_t ranks) {
  guarded([&] {
    Collectives &c = engine(ranks);
    Buffer buffer = view(data, elementBytes, "all_reduce");
    c.allReduce(
        buffer.data,
        static_cast<size_t>(product(buffer.shape, 0, buffer.shape.size())),
        dtype, ReduceOp::Sum);
  });
}

void allGather(const UnrankedMemRef *src, const UnrankedMemRef *dst,
               size_t elementBytes, int64_t ranks) {
  guarded([&] {
    Collectives &c = engine(ranks);
    Buffer in = view(src, elementBytes, "all_gather source");
    Buffer out = view(dst, elementBytes, "all_gather result");
    c.allGather(in.data, out.data,
                static_cast<size_t>(product(in.shape, 0, in.shape.size())) *
                    elementBytes);
  });
}

/// The shapes of a variable-size row exchange: `experts` counts, `local`
/// experts per rank, rows of `rowBytes`.
struct RowExchange {
  size_t ranks, experts, local, rowBytes;

  /// Rows that a packed expert-major buffer with `counts` [E] sends to each
  /// rank, i.e. the rows of that rank's experts.
  std::vector<size_t> perRank(const int64_t *counts) const {
    std::vector<size_t> rows(ranks, 0);
    for (size_t e = 0; e < experts; ++e)
      rows[e / local] += static_cast<size_t>(counts[e]);
    return rows;
  }

  /// Rows received from each rank, given the [ranks, local] received counts.
  std::vector<size_t> fromRanks(const int64_t *received) const {
    std::vector<size_t> rows(ranks, 0);
    for (size_t i = 0; i < ranks; ++i)
      for (size_t e = 0; e < local; ++e)
        rows[i] += static_cast<size_t>(received[i * local + e]);
    return rows;
  }

  std::vector<size_t> bytes(std::vector<size_t> rows) const {
    for (size_t &r : rows)
      r *= rowBytes;
    return rows;
  }

  /// Moves rows between the rank-major order of a received buffer (rank i's
  /// rows, expert-major inside) and the expert-major order of the local
  /// experts (rank order inside an expert), in either direction.
  void regroup(const int64_t *received, char *rankMajor, char *expertMajor,
               bool toExpertMajor) const {
    std::vector<size_t> rankStart(ranks + 1, 0);
    std::vector<size_t> fromRank = fromRanks(received);
    for (size_t i = 0; i < ranks; ++i)
      rankStart[i + 1] = rankStart[i] + fromRank[i];
    size_t at = 0;
    for (size_t e = 0; e < local; ++e)
      for (size_t i = 0; i < ranks; ++i) {
        size_t before = 0;
        for (size_t f = 0; f < e; ++f)
          before += static_cast<size_t>(received[i * local + f]);
        size_t n = static_cast<size_t>(received[i * local + e]) * rowBytes;
        char *a = rankMajor + (rankStart[i] + before) * rowBytes;
        char *b = expertMajor + at * rowBytes;
        if (toExpertMajor)
          std::memcpy(b, a, n);
        else
          std::memcpy(a, b, n);
        at += static_cast<size_t>(received[i * local + e]);
      }
  }
};

size_t total(const std::vector<size_t> &v) {
  size_t sum = 0;
  for (size_t x : v)
    sum += x;
  return sum;
}

/// Checks that `needed` rows fit the `available` rows of a buffer.
void checkRows(size_t needed, int64_t available, const char *what) {
  if (needed > static_cast<size_t>(available))
    throw Error(std::string("moe_rt: error: ") + what + " needs " +
                std::to_string(needed) + " rows but its buffer has " +
                std::to_string(available));
}

RowExchange rowExchange(int64_t ranks, const Buffer &counts,
                        const Buffer &rows, size_t elementBytes) {
  auto n = static_cast<size_t>(ranks);
  auto experts = static_cast<size_t>(counts.shape[0]);
  return {n, experts, experts / n,
          static_cast<size_t>(rows.shape[1]) * elementBytes};
}

void exchangeRows(const UnrankedMemRef *rows, const UnrankedMemRef *counts,
                  const UnrankedMemRef *received,
                  const UnrankedMemRef *receivedCounts, size_t elementBytes,
                  int64_t ranks) {
  guarded([&] {
    Collectives &c = engine(ranks);
    Buffer in = view(rows, elementBytes, "exchange_rows source");
    Buffer sizes = view(counts, 8, "exchange_rows counts");
    Buffer out = view(received, elementBytes, "exchange_rows result");
    Buffer got = view(receivedCounts, 8, "exchange_rows received counts");
    RowExchange x = rowExchange(ranks, sizes, in, elementBytes);
    const auto *mine = reinterpret_cast<const int64_t *>(sizes.data);
    auto *theirs = reinterpret_cast<int64_t *>(got.data);
    std::vector<size_t> sending = x.perRank(mine);
    checkRows(total(sending), in.shape[0], "exchange_rows source");
    // Counts first: rank q gets this rank's counts of q's experts.
    c.allToAll(mine, theirs, x.local * sizeof(int64_t));
    std::vector<size_t> receiving = x.fromRanks(theirs);
    checkRows(total(receiving), out.shape[0], "exchange_rows result");
    size_t arriving = total(receiving) * x.rowBytes;
    Staging staging(arriving);
    c.allToAllV(in.data, x.bytes(sending), staging.data(),
                x.bytes(receiving));
    x.regroup(theirs, staging.data(), out.data, /*toExpertMajor=*/true);
    std::memset(out.data + arriving, 0,
                static_cast<size_t>(out.shape[0]) * x.rowBytes - arriving);
  });
}

void returnRows(const UnrankedMemRef *rows,
                const UnrankedMemRef *receivedCounts,
                const UnrankedMemRef *counts, const UnrankedMemRef *result,
                size_t elementBytes, int64_t ranks) {
  guarded([&] {
    Collectives &c = engine(ranks);
    Buffer in = view(rows, elementBytes, "return_rows source");
    Buffer got = view(receivedCounts, 8, "return_rows received counts");
    Buffer sizes = view(counts, 8, "return_rows counts");
    Buffer out = view(result, elementBytes, "return_rows result");
    RowExchange x = rowExchange(ranks, sizes, in, elementBytes);
    const auto *theirs = reinterpret_cast<const int64_t *>(got.data);
    std::vector<size_t> sending = x.fromRanks(theirs);
    std::vector<size_t> receiving =
        x.perRank(reinterpret_cast<const int64_t *>(sizes.data));
    checkRows(total(sending), in.shape[0], "return_rows source");
    checkRows(total(receiving), out.shape[0], "return_rows result");
    Staging staging(total(sending) * x.rowBytes);
    x.regroup(theirs, staging.data(), in.data, /*toExpertMajor=*/false);
    c.allToAllV(staging.data(), x.bytes(sending), out.data,
                x.bytes(receiving));
    size_t filled = total(receiving) * x.rowBytes;
    std::memset(out.data + filled, 0,
                static_cast<size_t>(out.shape[0]) * x.rowBytes - filled);
  });
}

int64_t rankOf(int64_t ranks) {
  int64_t rank = 0;
  guarded([&] { rank = engine(ranks).rank(); });
  return rank;
}

} // namespace

void setActiveCollectives(Collectives *collectives, Collectives *group) {
  active = collectives;
  activeGroup = group;
}

void setDeviceStaging(void *(*allocate)(size_t), void (*release)(void *)) {
  deviceAllocate = allocate;
  deviceRelease = release;
}

} // namespace moe::runtime

using moe::runtime::UnrankedMemRef;

extern "C" {
#define MOE_ALL_TO_ALL(suffix, bytes)                                          \
  void _mlir_ciface_moe_rt_all_to_all_##suffix(                                \
      UnrankedMemRef *src, UnrankedMemRef *dst, int64_t ranks, int64_t split,  \
      int64_t concat) {                                                        \
    moe::runtime::allToAll(src, dst, bytes, ranks, split, concat);             \
  }
MOE_ALL_TO_ALL(f32, 4)
MOE_ALL_TO_ALL(bf16, 2)
MOE_ALL_TO_ALL(f16, 2)
#undef MOE_ALL_TO_ALL

#define MOE_ALL_GATHER(suffix, bytes)                                          \
  void _mlir_ciface_moe_rt_all_gather_##suffix(                                \
      UnrankedMemRef *src, UnrankedMemRef *dst, int64_t ranks) {               \
    moe::runtime::allGather(src, dst, bytes, ranks);                           \
  }
MOE_ALL_GATHER(f32, 4)
MOE_ALL_GATHER(bf16, 2)
MOE_ALL_GATHER(f16, 2)
MOE_ALL_GATHER(i32, 4)
#undef MOE_ALL_GATHER

#define MOE_ROW_EXCHANGE(suffix, bytes)                                        \
  void _mlir_ciface_moe_rt_exchange_rows_##suffix(                             \
      UnrankedMemRef *rows, UnrankedMemRef *counts, UnrankedMemRef *received,  \
      UnrankedMemRef *receivedCounts, int64_t ranks) {                         \
    moe::runtime::exchangeRows(rows, counts, received, receivedCounts, bytes,  \
                               ranks);                                         \
  }                                                                            \
  void _mlir_ciface_moe_rt_return_rows_##suffix(                               \
      UnrankedMemRef *rows, UnrankedMemRef *receivedCounts,                    \
      UnrankedMemRef *counts, UnrankedMemRef *result, int64_t ranks) {         \
    moe::runtime::returnRows(rows, receivedCounts, counts, result, bytes,      \
                             ranks);                                           \
  }
MOE_ROW_EXCHANGE(f32, 4)
MOE_ROW_EXCHANGE(bf16, 2)
MOE_ROW_EXCHANGE(f16, 2)
#undef MOE_ROW_EXCHANGE

int64_t _mlir_ciface_moe_rt_rank(int64_t ranks) {
  return moe::runtime::rankOf(ranks);
}

void moe_rt_check_failed(const char *message) {
  // One line whatever the message holds (MLIR's runtime verification
  // messages span lines), then the process ends at once: other threads of
  // the compiled code may still be running.
  std::string line = "moe_rt: error: runtime check failed: ";
  bool space = false;
  for (const char *c = message; c && *c; ++c) {
    if (*c == '\n' || *c == '\r' || *c == '\t') {
      space = true;
      continue;
    }
    if (space && line.back() != ' ')
      line += ' ';
    space = false;
    line += *c;
  }
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
  std::_Exit(3);
}

#define MOE_ALL_REDUCE(suffix, bytes, dtype)                                   \
  void _mlir_ciface_moe_rt_all_reduce_##suffix(UnrankedMemRef *data,           \
                                               int64_t ranks) {                \
    moe::runtime::allReduce(data, bytes, moe::runtime::DType::dtype, ranks);   \
  }
MOE_ALL_REDUCE(f32, 4, F32)
MOE_ALL_REDUCE(f64, 8, F64)
MOE_ALL_REDUCE(i64, 8, I64)
MOE_ALL_REDUCE(i32, 4, I32)
#undef MOE_ALL_REDUCE
}

std::vector<std::pair<std::string, void *>>
moe::runtime::collectiveEntryPoints() {
  return {
      {"_mlir_ciface_moe_rt_all_to_all_f32",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_all_to_all_f32)},
      {"_mlir_ciface_moe_rt_all_to_all_bf16",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_all_to_all_bf16)},
      {"_mlir_ciface_moe_rt_all_to_all_f16",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_all_to_all_f16)},
      {"_mlir_ciface_moe_rt_all_gather_f32",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_all_gather_f32)},
      {"_mlir_ciface_moe_rt_all_gather_bf16",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_all_gather_bf16)},
      {"_mlir_ciface_moe_rt_all_gather_f16",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_all_gather_f16)},
      {"_mlir_ciface_moe_rt_all_gather_i32",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_all_gather_i32)},
      {"_mlir_ciface_moe_rt_exchange_rows_f32",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_exchange_rows_f32)},
      {"_mlir_ciface_moe_rt_exchange_rows_bf16",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_exchange_rows_bf16)},
      {"_mlir_ciface_moe_rt_exchange_rows_f16",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_exchange_rows_f16)},
      {"_mlir_ciface_moe_rt_return_rows_f32",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_return_rows_f32)},
      {"_mlir_ciface_moe_rt_return_rows_bf16",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_return_rows_bf16)},
      {"_mlir_ciface_moe_rt_return_rows_f16",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_return_rows_f16)},
      {"_mlir_ciface_moe_rt_rank",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_rank)},
      {"moe_rt_rank", reinterpret_cast<void *>(&_mlir_ciface_moe_rt_rank)},
      {"moe_rt_check_failed", reinterpret_cast<void *>(&moe_rt_check_failed)},
      {"_mlir_ciface_moe_rt_all_reduce_f32",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_all_reduce_f32)},
      {"_mlir_ciface_moe_rt_all_reduce_f64",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_all_reduce_f64)},
      {"_mlir_ciface_moe_rt_all_reduce_i64",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_all_reduce_i64)},
      {"_mlir_ciface_moe_rt_all_reduce_i32",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_all_reduce_i32)},
  };
}
