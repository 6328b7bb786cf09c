//===- MoEModule.cpp - The moe Python extension (pybind11) ----------------===//
//
// moe._moe: the C++ API (moe/Runner/Layer.h) for Python. Arrays cross
// without copies through the buffer protocol: tokens and outputs are the
// caller's numpy arrays (or torch tensors' numpy views); weights are
// viewed in place and converted or packed once, when bound. Compiling,
// binding and calling release the GIL, so several Python threads can call a
// bound layer at once. The Pythonic surface is python/moe/__init__.py.
//
//===----------------------------------------------------------------------===//

#include "moe/Runner/Layer.h"
#include "moe/Runtime/Error.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;
namespace rt = ::moe::runtime;

namespace {

/// The runtime type of a numpy array's elements, for the float types the
/// layer takes (uint16: bfloat16 bit patterns).
rt::DType dtypeOf(const py::array &array, const std::string &name) {
  py::dtype type = array.dtype();
  if (type.is(py::dtype::of<float>()))
    return rt::DType::F32;
  if (type.is(py::dtype::of<double>()))
    return rt::DType::F64;
  if (type.kind() == 'f' && type.itemsize() == 2)
    return rt::DType::F16;
  // numpy has no bfloat16: its bit patterns come as uint16 (moe's Python
  // side passes torch.bfloat16 tensors so).
  if (type.kind() == 'u' && type.itemsize() == 2)
    return rt::DType::BF16;
  throw rt::Error("moe: error: " + name + " has numpy dtype " +
                  std::string(py::str(type)) +
                  "; expected float32, float64, float16 or uint16 (bfloat16 "
                  "bits)");
}

/// A view of a C-contiguous numpy array (no copy).
rt::HostTensor viewOf(py::array &array, const std::string &name) {
  if (!(array.flags() & py::array::c_style))
    throw rt::Error("moe: error: " + name +
                    " is not C-contiguous (use numpy.ascontiguousarray)");
  std::vector<int64_t> shape(array.shape(), array.shape() + array.ndim());
  return rt::HostTensor::view(dtypeOf(array, name), shape,
                              array.mutable_data());
}

py::dict statsDict(const rt::LayerStats &stats) {
  py::dict d;
  d["capacity"] = stats.capacity ? py::cast(*stats.capacity) : py::none();
  d["tokens_per_expert"] = stats.tokensPerExpert;
  d["dropped"] = stats.dropped;
  d["load_balance_loss"] = stats.loadBalanceLoss;
  d["router_z_loss"] = stats.routerZLoss;
  return d;
}

} // namespace

PYBIND11_MODULE(_moe, m) {
  m.doc() = "The moe toolchain's C++ API (use the moe package instead)";
  static py::exception<rt::Error> error(m, "Error", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p)
        std::rethrow_exception(p);
    } catch (const rt::Error &e) {
      PyErr_SetString(error.ptr(), e.what());
    }
  });

  py::class_<::moe::CompileOptions>(m, "CompileOptions")
      .def(py::init<>())
      .def_readwrite("backend", &::moe::CompileOptions::backend)
      .def_readwrite("gpu_chip", &::moe::CompileOptions::gpuChip)
      .def_readwrite("activation_dtype",
                     &::moe::CompileOptions::activationType)
      .def_readwrite("weights_dtype", &::moe::CompileOptions::weightType)
      .def_readwrite("opt_level", &::moe::CompileOptions::optLevel)
      .def_readwrite("fusion", &::moe::CompileOptions::fusion)
      .def_readwrite("runtime_checks", &::moe::CompileOptions::runtimeChecks)
      .def_readwrite("cuda_graph", &::moe::CompileOptions::cudaGraph)
      .def_readwrite("threads", &::moe::CompileOptions::threads)
      .def_readwrite("cache_dir", &::moe::CompileOptions::cacheDir)
      .def_readwrite("progress", &::moe::CompileOptions::progress);

  py::class_<::moe::BoundLayer>(m, "BoundLayer")
      .def(
          "call_into",
          [](const ::moe::BoundLayer &layer, py::array x, py::array y,
             bool allowNonFinite) {
            if (!y.writeable())
              throw rt::Error("moe: error: the output array is read-only");
            rt::HostTensor in = viewOf(x, "the input");
            rt::HostTensor out = viewOf(y, "the output");
            rt::LayerStats stats;
            {
              py::gil_scoped_release release;
              stats = layer(in, out, allowNonFinite);
            }
            return statsDict(stats);
          },
          py::arg("x"), py::arg("y"), py::arg("allow_non_finite") = false,
          "Calls the layer on x [tokens, d_model], writing y in place; "
          "returns the statistics")
      .def(
          "time_calls",
          [](const ::moe::BoundLayer &layer, py::array x, py::array y,
             int64_t runs) {
            rt::HostTensor in = viewOf(x, "the input");
            rt::HostTensor out = viewOf(y, "the output");
            py::gil_scoped_release release;
            return layer.timeCalls(in, out, runs);
          },
          py::arg("x"), py::arg("y"), py::arg("runs"),
          "Seconds of each of `runs` calls made in a C++ loop (no Python "
          "between calls): the layer's own time, for overhead measurements");

  py::class_<::moe::CompiledLayer>(m, "CompiledLayer")
      .def_property_readonly(
          "d_model",
          [](const ::moe::CompiledLayer &l) {
            return l.description().spec.dModel;
          })
      .def_property_readonly(
          "d_ff",
          [](const ::moe::CompiledLayer &l) {
            return l.description().spec.dFF;
          })
      .def_property_readonly(
          "num_experts",
          [](const ::moe::CompiledLayer &l) {
            return l.description().spec.numExperts;
          })
      .def_property_readonly(
          "tokens",
          [](const ::moe::CompiledLayer &l) { return l.description().tokens; })
      .def_property_readonly("capacity",
                             [](const ::moe::CompiledLayer &l) {
                               return l.description().capacity;
                             })
      .def_property_readonly("compile_seconds",
                             &::moe::CompiledLayer::compileSeconds)
      .def_property_readonly("from_cache", &::moe::CompiledLayer::fromCache)
      .def(
          "bind_file",
          [](const ::moe::CompiledLayer &layer, const std::string &path,
             const std::string &prefix, bool allowNonFinite) {
            py::gil_scoped_release release;
            return layer.bind(path, prefix, allowNonFinite);
          },
          py::arg("path"), py::arg("prefix") = "",
          py::arg("allow_non_finite") = false)
      .def(
          "bind_arrays",
          [](const ::moe::CompiledLayer &layer, py::dict arrays,
             bool allowNonFinite) {
            // The views live until bind returns; bind copies what it keeps.
            std::vector<py::array> keep;
            std::map<std::string, rt::HostTensor> named;
            for (auto [key, value] : arrays) {
              std::string name = py::cast<std::string>(key);
              keep.push_back(py::cast<py::array>(value));
              named.emplace(name, viewOf(keep.back(), "weight '" + name + "'"));
            }
            py::gil_scoped_release release;
            return layer.bind(std::move(named), allowNonFinite);
          },
          py::arg("arrays"), py::arg("allow_non_finite") = false);

  m.def(
      "compile_spec_text",
      [](const std::string &json, int64_t tokens,
         const ::moe::CompileOptions &options, const std::string &source) {
        py::gil_scoped_release release;
        return ::moe::CompiledLayer::fromSpecText(json, tokens, options,
                                                  source);
      },
      py::arg("json"), py::arg("tokens"), py::arg("options"),
      py::arg("source"));
  m.def(
      "compile_spec",
      [](const std::string &path, int64_t tokens,
         const ::moe::CompileOptions &options) {
        py::gil_scoped_release release;
        return ::moe::CompiledLayer::fromSpec(path, tokens, options);
      },
      py::arg("path"), py::arg("tokens"), py::arg("options"));
  m.def(
      "compile_module",
      [](const std::string &path, const ::moe::CompileOptions &options) {
        py::gil_scoped_release release;
        return ::moe::CompiledLayer::fromModule(path, options);
      },
      py::arg("path"), py::arg("options"));
  m.def("weights_dtype_of", &::moe::weightTypeOf, py::arg("path"),
        py::arg("prefix") = "");
}
