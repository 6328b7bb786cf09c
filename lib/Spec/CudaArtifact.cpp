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
  layer.rejectUnknown({"d_model", "d_ff", "num_experts", "gated", "capacity"});
  a.dModel = readDimension(layer.require("d_model"), "layer.d_model");
  a.dFF = readDimension(layer.require("d_ff"), "layer.d_ff");
  a.numExperts =
      readDimension(layer.require("num_experts"), "layer.num_experts");
  a.gated = readBool(layer.require("gated"), "layer.gated");
  a.capacity = readPositive(layer.require("capacity"), "layer.capacity",
                            std::numeric_limits<int64_t>::max(),
                            /*allowNull=*/true);

  const JSON &buffers = fields.require("buffers");
  std::vector<std::string_view> names{"input", "router", "w_in"};
  if (a.gated)
    names.push_back("w_gate");
  for (std::string_view n : {"w_out", "output", "tokens_per_expert", "dropped",
                             "load_balance_loss", "router_z_loss"})
    names.push_back(n);
  if (!buffers.is_array() || buffers.size() != names.size())
    failField("buffers", "expected an array of " +
                             std::to_string(names.size()) +
                             " buffers for this layer, got " +
                             describe(buffers));
  for (size_t i = 0; i < names.size(); ++i) {
    a.buffers.push_back(readBuffer(buffers[i],
                                   "buffers[" + std::to_string(i) + "]",
                                   names[i]));
    bool result = i + 5 >= names.size();
    if (a.buffers.back().isResult != result)
      failField("buffers[" + std::to_string(i) + "].role",
                std::string("expected ") + (result ? "result" : "input"));
  }
  const int64_t d = a.dModel, f = a.dFF, e = a.numExperts;
  const CudaArtifact::Buffer &input = a.buffers[0];
  if (input.shape.size() != 2)
    failField("buffers[0].shape", "'input' must be [T, d_model]");
  a.tokens = input.shape[0];
  size_t i = 0;
  expectBuffer(a.buffers[i], i, {a.tokens, d}, {"f32", "bf16", "f16"});
  ++i;
  expectBuffer(a.buffers[i], i, {e, d}, {"f32", "bf16", "f16"});
  for (++i; i + 6 < a.buffers.size(); ++i)
    expectBuffer(a.buffers[i], i, {e, d, f}, {"f32", "bf16", "f16"});
  expectBuffer(a.buffers[i], i, {e, f, d}, {"f32", "bf16", "f16"});
  ++i;
  expectBuffer(a.buffers[i], i, {a.tokens, d}, {input.dtype});
  ++i;
  expectBuffer(a.buffers[i], i, {e}, {"i64"});
  ++i;
  expectBuffer(a.buffers[i], i, {}, {"i64"});
  for (++i; i < a.buffers.size(); ++i)
    expectBuffer(a.buffers[i], i, {}, {"f32"});

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
