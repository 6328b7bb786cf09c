func.func @all_reduce_bf16(%c: tensor<8xbf16>) {
  %r = moe.all_reduce %c ranks = 2 : tensor<8xbf16>
  return
}
