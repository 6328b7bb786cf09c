//===- Version.cpp - The version of libMoE --------------------------------===//
//
// See moe::version() in moe/Runner/Layer.h. The only object of its own in
// libMoE.so; the rest is the moe libraries linked in whole.
//
//===----------------------------------------------------------------------===//

#include "moe/Runner/Layer.h"

const char *moe::version() { return MOE_VERSION_STRING; }
