//===- moe-opt.cpp - The moe optimizer driver ---------------------*- C++
//-*-===//
//
// mlir-opt with the moe dialect and passes added to every upstream dialect,
// extension and pass.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/IR/MoEDialect.h"
#include "moe/Transforms/Passes.h"

#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::NVVM::registerNVVMTargetInterfaceExternalModels(registry);
  mlir::registerAllToLLVMIRTranslations(registry);
  registry.insert<mlir::moe::MoEDialect>();
  mlir::registerAllPasses();
  mlir::moe::registerMoEPasses();
  mlir::moe::registerMoEConversionPasses();
  mlir::moe::registerMoEPipelines();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "moe optimizer driver: passes over moe and upstream IR\n",
      registry));
}
