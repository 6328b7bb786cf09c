//===- CudaArtifact.cpp - Reading the CUDA artifact ------------------------===//
//
// Validation of the "moe-cuda-artifact" JSON, with the field readers of the
// layer-spec parser.
//
//===----------------------------------------------------------------------===//

#include "moe/Spec/CudaArtifact.h"

#include "JSONFields.h"

using namespace moe::spec;
using namespace moe::spec::detail;

namespace {

const JSON &requireObject(const Fields &fields, std::string_view name) {
  const JSON &value = fields.require(name);
  if (!value.is_object())
    failField(name, "expected an object, got " + describe(value));
  return value;
}

CudaArtifact::Buffer readBuffer(const JSON &value, const std::string &where,
                                std::string_view expectedName) {
  if (!value.is_object())
    failField(where, "expected an object, got " + describe(value));
  Fields fields(value);
  fields.rejectUnknown({"name", "role", "dtype", "shape"});
  CudaArtifact::Buffer buffer;
  buffer.name =
      readString(fields.require("name"), where + ".name", "a buffer name");
  if (buffer.name != expectedName)
    failField(where + ".name", "expected '" + std::string(expectedName) +
                                   "' at this position, got " +
                                   describe(fields.require("name")));
  std::string role =
      readString(fields.require("role"), where + ".role", "input or result");
  if (role != "input" && role != "result")
    failField(where + ".role",
              "expected input or result, got " + describe(fields.require("role")));
  buffer.isResult = role == "result";
  buffer.dtype =
      readString(fields.require("dtype"), where + ".dtype", "an element type");
  if (buffer.dtype != "f32" && buffer.dtype != "bf16" &&
      buffer.dtype != "f16" && buffer.dtype != "i64")
    failField(where + ".dtype", "expected f32, bf16, f16 or i64, got " +
                                    describe(fields.require("dtype")));
  const JSON &shape = fields.require("shape");
  if (!shape.is_array() || shape.size() > 3)
    failField(where + ".shape",
              "expected an array of at most 3 sizes, got " + describe(shape));
  for (const JSON &size : shape)
    buffer.shape.push_back(readPositiveInt(size, where + ".shape"));
  return buffer;
}

/// Checks a buffer's shape and element type against the layer's sizes.
void expectBuffer(const CudaArtifact::Buffer &buffer, size_t index,
                  const std::vector<int64_t> &shape,
                  std::initializer_list<std::string_view> dtypes) {
  std::string where = "buffers[" + std::to_string(index) + "]";
  if (buffer.shape != shape) {
    std::string want = "[", got = "[";
    for (size_t i = 0; i < shape.size(); ++i)
      want += (i ? ", " : "") + std::to_string(shape[i]);
    for (size_t i = 0; i < buffer.shape.size(); ++i)
      got += (i ? ", " : "") + std::to_string(buffer.shape[i]);
    failField(where + ".shape", "'" + buffer.name + "' must be " + want +
                                    "] for this layer, got " + got + "]");
  }
  if (std::find(dtypes.begin(), dtypes.end(), buffer.dtype) == dtypes.end())
    failField(where + ".dtype", "'" + buffer.name + "' cannot be " +
                                    buffer.dtype);
}

CudaArtifact readArtifact(std::string_view text) {
  JSON doc = parseObject(text);
  Fields fields(doc);
  fields.rejectUnknown({"format", "version", "function", "entry",
                        "signature", "target",
                        "layer", "buffers", "kernels", "memory", "host_abi",
                        "host_llvm_ir"});
  CudaArtifact a;
  if (readString(fields.require("format"), "format",
                 "\"moe-cuda-artifact\"") != "moe-cuda-artifact")
    failField("format", "expected \"moe-cuda-artifact\", got " +
                            describe(fields.require("format")));
  a.version = readPositiveInt(fields.require("version"), "version");
  if (a.version != kCudaArtifactReadVersion)
    failField("version", "the artifact has version " +
                             std::to_string(a.version) +
                             ", this build reads version " +
                             std::to_string(kCudaArtifactReadVersion) +
                             " (emit it again with this moe-translate)");
  a.function =
      readString(fields.require("function"), "function", "a function name");
  a.entry = readString(fields.require("entry"), "entry", "a symbol name");
  if (a.function.empty() || a.entry != "_mlir_ciface_" + a.function)
    failField("entry", "expected '_mlir_ciface_" + a.function + "', got " +
                           describe(fields.require("entry")));

  a.signature = readString(fields.require("signature"), "signature",
                           "the layer's call signature");

  Fields target(requireObject(fields, "target"));
  target.rejectUnknown({"chip", "features", "kernel_format"});
  a.chip = readString(target.require("chip"), "target.chip", "a chip name");
  if (a.chip.rfind("sm_", 0) != 0)
    failField("target.chip", "expected an sm_XX chip, got " +
                                 describe(target.require("chip")));
  readString(target.require("features"), "target.features", "PTX features");
  a.kernelFormat = readString(target.require("kernel_format"),
                              "target.kernel_format", "cubin or ptx");
  if (a.kernelFormat != "cubin" && a.kernelFormat != "ptx")
    failField("target.kernel_format",
              "expected cubin or ptx, got " +
                  describe(target.require("kernel_format")));

  Fields layer(requireObject(fields, "layer"));
  layer.rejectUnknown({"d_model", "d_ff", "num_experts", "gated", "capacity",
                       "score_bias", "shared_d_ff", "shared_gate"});
  a.dModel = readDimension(layer.require("d_model"), "layer.d_model");
  a.dFF = readDimension(layer.require("d_ff"), "layer.d_ff");
  a.numExperts =
      readDimension(layer.require("num_experts"), "layer.num_experts");
  a.gated = readBool(layer.require("gated"), "layer.gated");
  a.capacity = readPositive(layer.require("capacity"), "layer.capacity",
                            std::numeric_limits<int64_t>::max(),
                            /*allowNull=*/true);
  if (const JSON *bias = layer.find("score_bias"))
    a.scoreBias = readBool(*bias, "layer.score_bias");
  if (const JSON *shared = layer.find("shared_d_ff"))
    a.sharedDFF = readDimension(*shared, "layer.shared_d_ff");
  if (const JSON *gate = layer.find("shared_gate"))
    a.sharedGate = readBool(*gate, "layer.shared_gate");
  if (a.sharedGate && a.sharedDFF == 0)
    failField("layer.shared_gate", "needs a shared expert (layer.shared_d_ff)");

  // The buffers in call order, with the shape and element types each must
  // have: (name, shape, dtypes).
  const int64_t d = a.dModel, f = a.dFF, e = a.numExperts, fs = a.sharedDFF;
  const JSON &buffers = fields.require("buffers");
  const JSON *first = buffers.is_array() && !buffers.empty() ? &buffers[0]
                                                             : nullptr;
  // T comes from the input buffer; a bad one is reported by its check.
  int64_t tokens = 0;
  if (first && first->is_object() && first->contains("shape") &&
      (*first)["shape"].is_array() && !(*first)["shape"].empty())
    if (std::optional<int64_t> t = toInt64((*first)["shape"][0]))
      tokens = *t;
  using Floats = std::initializer_list<std::string_view>;
  const Floats floats{"f32", "bf16", "f16"};
  struct Expected {
    std::string_view name;
    std::vector<int64_t> shape;
    bool result;
  };
  std::vector<Expected> expected{{"input", {tokens, d}, false},
                                 {"router", {e, d}, false}};
  if (a.scoreBias)
    expected.push_back({"score_bias", {e}, false});
  expected.push_back({"w_in", {e, d, f}, false});
  if (a.gated)
    expected.push_back({"w_gate", {e, d, f}, false});
  expected.push_back({"w_out", {e, f, d}, false});
  if (fs > 0) {
    expected.push_back({"shared_w_in", {d, fs}, false});
    if (a.gated)
      expected.push_back({"shared_w_gate", {d, fs}, false});
    expected.push_back({"shared_w_out", {fs, d}, false});
  }
  if (a.sharedGate)
    expected.push_back({"shared_gate", {d}, false});
  for (std::string_view n : {"output", "tokens_per_expert", "dropped",
                             "load_balance_loss", "router_z_loss"})
    expected.push_back({n, {}, true});
  if (!buffers.is_array() || buffers.size() != expected.size())
    failField("buffers", "expected an array of " +
                             std::to_string(expected.size()) +
                             " buffers for this layer, got " +
                             describe(buffers));
  for (size_t i = 0; i < expected.size(); ++i) {
    a.buffers.push_back(readBuffer(buffers[i],
                                   "buffers[" + std::to_string(i) + "]",
                                   expected[i].name));
    if (a.buffers.back().isResult != expected[i].result)
      failField("buffers[" + std::to_string(i) + "].role",
                std::string("expected ") +
                    (expected[i].result ? "result" : "input"));
  }
  const CudaArtifact::Buffer &input = a.buffers[0];
  if (input.shape.size() != 2)
    failField("buffers[0].shape", "'input' must be [T, d_model]");
  a.tokens = input.shape[0];
  size_t results = expected.size() - 5;
  for (size_t i = 0; i < results; ++i)
    expectBuffer(a.buffers[i], i, expected[i].shape,
                 expected[i].name == "score_bias" ? Floats{"f32"} : floats);
  expectBuffer(a.buffers[results], results, {a.tokens, d}, {input.dtype});
  expectBuffer(a.buffers[results + 1], results + 1, {e}, {"i64"});
  expectBuffer(a.buffers[results + 2], results + 2, {}, {"i64"});
  for (size_t i = results + 3; i < a.buffers.size(); ++i)
    expectBuffer(a.buffers[i], i, {}, {"f32"});

  // "device: ..." when every buffer may live in device memory; anything
  // else (and artifacts written before the field said so) is managed.
  if (const JSON *memory = fields.find("memory")) {
    std::string text = readString(*memory, "memory", "a memory description");
    a.deviceMemory = text.rfind("device:", 0) == 0;
  }
  const JSON &kernels = fields.require("kernels");
  if (!kernels.is_array() || kernels.empty())
    failField("kernels", "expected a non-empty array, got " +
                             describe(kernels));
  a.kernels = static_cast<int64_t>(kernels.size());
  a.hostLLVMIR = readString(fields.require("host_llvm_ir"), "host_llvm_ir",
                            "the host code as LLVM IR text");
  if (a.hostLLVMIR.empty())
    failField("host_llvm_ir", "is empty");
  return a;
}

} // namespace

CudaArtifactResult moe::spec::parseCudaArtifact(std::string_view text,
                                                std::string_view source) {
  CudaArtifactResult result;
  result.error = errorOf(source, [&] { result.artifact = readArtifact(text); });
  return result;
}
