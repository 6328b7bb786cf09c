//===- EntryPoints.cpp - C entry points that compiled layers call --*- C++
//-*-===//
//
// `moe_rt_all_to_all_<type>(src, dst, ranks, split_dim, concat_dim)` and
// `moe_rt_all_reduce_<type>(data, ranks)` over unranked memref descriptors:
// the all-to-all packs the chunks of `src` along split_dim, exchanges them
// with the active engine and lays the received chunks side by side along
// concat_dim of `dst`. Errors cannot unwind through compiled code: they are
// printed as one line and the process exits with status 1.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/EntryPoints.h"
#include "moe/Runtime/Error.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace moe::runtime {
namespace {

Collectives *active = nullptr;

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

Collectives &engine(int64_t ranks) {
  if (!active)
    throw Error("moe_rt: error: a sharded layer ran without a collectives "
                "engine (run it with moe-run --shards under mpirun)");
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
    std::vector<char> send(bytes), recv(bytes);
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

int64_t rankOf(int64_t ranks) {
  int64_t rank = 0;
  guarded([&] { rank = engine(ranks).rank(); });
  return rank;
}

} // namespace

void setActiveCollectives(Collectives *collectives) { active = collectives; }

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

int64_t _mlir_ciface_moe_rt_rank(int64_t ranks) {
  return moe::runtime::rankOf(ranks);
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
      {"_mlir_ciface_moe_rt_rank",
       reinterpret_cast<void *>(&_mlir_ciface_moe_rt_rank)},
      {"moe_rt_rank", reinterpret_cast<void *>(&_mlir_ciface_moe_rt_rank)},
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
