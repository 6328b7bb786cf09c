//===- moe-translate.cpp - The moe translation driver -------------*- C++
//-*-===//
//
// mlir-translate with the moe imports (layer-spec JSON, Hugging Face
// config.json) and GPU code emission (PTX, the CUDA artifact) added to every
// upstream translation.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/Import.h"
#include "moe/Target/CudaArtifact.h"

#include "mlir/InitAllTranslations.h"
#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"

int main(int argc, char **argv) {
  mlir::registerAllTranslations();
  mlir::moe::registerImportTranslations();
  mlir::moe::registerGpuTranslations();
  return mlir::failed(mlir::mlirTranslateMain(
             argc, argv,
             "moe translation driver: JSON imports, GPU code emission "
             "and upstream translations\n"))
             ? 1
             : 0;
}
