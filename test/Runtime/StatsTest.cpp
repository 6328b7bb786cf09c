//===- StatsTest.cpp - Tests of the statistics JSON and text writes -------===//
//
// The exact JSON of spec §4 (with and without a capacity) and atomic text
// writes.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "moe/Runtime/Stats.h"

#include <filesystem>

using namespace moe::runtime;
using namespace moe::runtime::test;

namespace {

TEST(Stats, WritesTheKeysOfTheSpecInOrder) {
  LayerStats stats;
  stats.capacity = 4;
  stats.tokensPerExpert = {3, 4, 0};
  stats.dropped = 2;
  stats.loadBalanceLoss = 1.25;
  stats.routerZLoss = 0.5;
  EXPECT_EQ(statsToJSON(stats), "{\n"
                                "  \"capacity\": 4,\n"
                                "  \"tokens_per_expert\": [\n"
                                "    3,\n"
                                "    4,\n"
                                "    0\n"
                                "  ],\n"
                                "  \"dropped\": 2,\n"
                                "  \"load_balance_loss\": 1.25,\n"
                                "  \"router_z_loss\": 0.5\n"
                                "}\n");
}

TEST(Stats, WritesNullCapacityWhenDropless) {
  LayerStats stats;
  stats.tokensPerExpert = {1};
  stats.loadBalanceLoss = 1.0;
  std::string json = statsToJSON(stats);
  EXPECT_NE(json.find("  \"capacity\": null,\n"), std::string::npos) << json;
  EXPECT_NE(json.find("  \"dropped\": 0,\n"), std::string::npos) << json;
  // Losses keep full double precision.
  stats.routerZLoss = 0.1 + 0.2;
  EXPECT_NE(statsToJSON(stats).find("0.30000000000000004"), std::string::npos);
}

TEST(Stats, WritesTextFilesAtomically) {
  ScratchDir dir;
  std::string path = dir.file("stats.json");
  writeTextFileAtomically(path, "first\n");
  writeTextFileAtomically(path, "second\n");
  EXPECT_EQ(readBytes(path), "second\n");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"stats.json"});

  std::string nowhere = dir.file("missing/stats.json");
  EXPECT_TRUE(throwsError([&] { writeTextFileAtomically(nowhere, "x"); },
                          {nowhere + ": error: cannot write the file: No such "
                                     "file or directory"}));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"stats.json"});

  // A rename that fails (the target is a directory) leaves no temporary.
  std::string directory = dir.file("sub");
  writeTextFileAtomically(dir.file("sub.txt"), "y");
  std::filesystem::create_directory(directory);
  EXPECT_TRUE(throwsError([&] { writeTextFileAtomically(directory, "z"); },
                          {directory + ": error: cannot replace the file"}));
  EXPECT_EQ(dir.entries(),
            (std::vector<std::string>{"stats.json", "sub", "sub.txt"}));
}

} // namespace
