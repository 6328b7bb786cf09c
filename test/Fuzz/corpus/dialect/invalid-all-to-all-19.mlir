func.func @rank_zero() {
  %r = moe.rank ranks = 0
  return
}
