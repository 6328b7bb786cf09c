//===- moe-translate.cpp - The moe translation driver -------------*- C++
//-*-===//
//
// mlir-translate with the moe imports (layer-spec JSON, Hugging Face
// config.json) added to every upstream translation.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/Import.h"

#include "mlir/InitAllTranslations.h"
#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"

int main(int argc, char **argv) {
  mlir::registerAllTranslations();
  mlir::moe::registerImportTranslations();
  return mlir::failed(mlir::mlirTranslateMain(
             argc, argv,
             "moe translation driver: JSON imports and upstream "
             "translations\n"))
             ? 1
             : 0;
}
