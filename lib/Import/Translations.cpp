//===- Translations.cpp - moe-translate's JSON imports ------------*- C++
//-*-===//
//
// Registers `--import-moe-spec` (layer-spec JSON) and `--import-hf-config`
// (Hugging Face config.json) with the translation registry, with the options
// that fix what a spec leaves open: token count, element types, names.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEDialect.h"
#include "moe/Import/Import.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::moe;
namespace spec = ::moe::spec;

namespace {
llvm::cl::OptionCategory importCategory("moe import options");

llvm::cl::opt<int64_t> tokensOpt(
    "tokens",
    llvm::cl::desc("Tokens T of one call (default: the spec's group_size, "
                   "else 1024)"),
    llvm::cl::init(0), llvm::cl::cat(importCategory));

llvm::cl::opt<ElementKind> actDtypeOpt(
    "act-dtype", llvm::cl::desc("Element type of the tokens and the output"),
    llvm::cl::values(clEnumValN(ElementKind::F32, "f32", "float32 (default)"),
                     clEnumValN(ElementKind::BF16, "bf16", "bfloat16"),
                     clEnumValN(ElementKind::F16, "f16", "float16")),
    llvm::cl::init(ElementKind::F32), llvm::cl::cat(importCategory));

llvm::cl::opt<ElementKind> weightDtypeOpt(
    "weight-dtype", llvm::cl::desc("Element type of the router and experts"),
    llvm::cl::values(clEnumValN(ElementKind::F32, "f32", "float32 (default)"),
                     clEnumValN(ElementKind::BF16, "bf16", "bfloat16"),
                     clEnumValN(ElementKind::F16, "f16", "float16")),
    llvm::cl::init(ElementKind::F32), llvm::cl::cat(importCategory));

llvm::cl::opt<std::string>
    funcNameOpt("func-name", llvm::cl::desc("Name of the generated function"),
                llvm::cl::init("moe_layer"), llvm::cl::cat(importCategory));

llvm::cl::opt<int64_t> seqLenOpt(
    "seq-len",
    llvm::cl::desc("--import-hf-config, switch_transformers: sequence length, "
                   "which is the routing group (default: all tokens)"),
    llvm::cl::init(0), llvm::cl::cat(importCategory));
} // namespace

/// Finishes an import: checks the call's options against the spec, prints a
/// one-line error and returns null when they do not fit.
static OwningOpRef<Operation *> importParsed(const spec::SpecResult &parsed,
                                             llvm::StringRef source,
                                             MLIRContext *context) {
  if (!parsed) {
    llvm::errs() << parsed.error << "\n";
    return nullptr;
  }
  const spec::LayerSpec &layer = *parsed.spec;
  if (tokensOpt < 0 || seqLenOpt < 0) {
    llvm::errs() << source << ": error: --tokens and --seq-len must be "
                 << "positive\n";
    return nullptr;
  }
  ImportOptions options;
  options.tokens = tokensOpt ? tokensOpt.getValue()
                             : layer.groupSize.value_or(options.tokens);
  options.activationType = actDtypeOpt;
  options.weightType = weightDtypeOpt;
  options.funcName = funcNameOpt;
  std::string bad = spec::checkTokens(layer, options.tokens, source.str());
  if (!bad.empty()) {
    llvm::errs() << bad << "\n";
    return nullptr;
  }
  Location loc = FileLineColLoc::get(context, source, 1, 1);
  return buildLayerModule(context, layer, options, loc);
}

static llvm::StringRef bufferText(llvm::SourceMgr &sourceMgr) {
  return sourceMgr.getMemoryBuffer(sourceMgr.getMainFileID())->getBuffer();
}

static llvm::StringRef bufferName(llvm::SourceMgr &sourceMgr) {
  return sourceMgr.getMemoryBuffer(sourceMgr.getMainFileID())
      ->getBufferIdentifier();
}

void mlir::moe::registerImportTranslations() {
  auto dialects = [](DialectRegistry &registry) {
    registry.insert<MoEDialect, func::FuncDialect, arith::ArithDialect>();
  };
  static TranslateToMLIRRegistration importSpec(
      "import-moe-spec",
      "Import a layer-spec JSON file as a moe.layer function",
      [](llvm::SourceMgr &sourceMgr, MLIRContext *context) {
        llvm::StringRef name = bufferName(sourceMgr);
        return importParsed(
            spec::parseLayerSpec(bufferText(sourceMgr).str(), name.str()), name,
            context);
      },
      dialects);
  static TranslateToMLIRRegistration importHF(
      "import-hf-config",
      "Import a Hugging Face config.json (switch_transformers, mixtral)",
      [](llvm::SourceMgr &sourceMgr, MLIRContext *context) {
        llvm::StringRef name = bufferName(sourceMgr);
        std::optional<int64_t> seqLen;
        if (seqLenOpt > 0)
          seqLen = seqLenOpt.getValue();
        return importParsed(spec::parseHFConfig(bufferText(sourceMgr).str(),
                                                name.str(), seqLen),
                            name, context);
      },
      dialects);
}
