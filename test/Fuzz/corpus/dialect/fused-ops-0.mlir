func.func @route_rows(%p: tensor<16x4xf32>)
    -> (tensor<16x2xi32>, tensor<16x2xf32>, tensor<16x2xi1>, tensor<4xi64>,
        tensor<5xi64>, tensor<32xi32>, tensor<32xf32>, tensor<44xi32>) {
  %e, %g, %k, %c, %o, %t, %w = moe.route_rows %p k = 2 normalize
      group_size = 8 capacity = 4 priority = position : tensor<16x4xf32>
  %e1, %g1, %k1, %c1, %o1, %t1, %w1 = moe.route_rows %p k = 1
      group_size = 16 priority = batch_prioritized block = 8 : tensor<16x4xf32>
  return %e, %g, %k, %c, %o, %t, %w, %t1 : tensor<16x2xi32>, tensor<16x2xf32>,
      tensor<16x2xi1>, tensor<4xi64>, tensor<5xi64>, tensor<32xi32>,
      tensor<32xf32>, tensor<44xi32>
}

func.func @sort(%e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>,
                %g: tensor<16x2xf32>, %c: tensor<4xi64>) {
  %o, %t, %w = moe.sort_by_expert %e, %s, %k, %g, %c
      : tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>, tensor<4xi64>
      -> tensor<5xi64>, tensor<32xi32>, tensor<32xf32>
  %o8, %t8, %w8 = moe.sort_by_expert %e, %s, %k, %g, %c block = 8
      : tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>, tensor<4xi64>
      -> tensor<5xi64>, tensor<60xi32>, tensor<60xf32>
  return
}

func.func @grouped(%x: tensor<16x32xbf16>, %t: tensor<32xi32>, %w: tensor<4x32x64xbf16>,
                   %wg: tensor<4x32x64xbf16>, %wo: tensor<4x64x32xbf16>,
                   %o: tensor<5xi64>, %c: tensor<4xi64>, %s: tensor<32xf32>) {
  %h = moe.grouped_matmul %x gather(%t) weight(%w) gate_weight(%wg) offsets(%o)
      counts(%c) activation swiglu
      : tensor<16x32xbf16>, tensor<32xi32>, tensor<4x32x64xbf16>, tensor<4x32x64xbf16>,
        tensor<5xi64>, tensor<4xi64> -> tensor<32x64xf32>
  %y = moe.grouped_matmul %h weight(%wo) offsets(%o) counts(%c) scatter(%t, %s)
      : tensor<32x64xf32>, tensor<4x64x32xbf16>, tensor<5xi64>, tensor<4xi64>,
        tensor<32xi32>, tensor<32xf32> -> tensor<16x32xf32>
  %r = moe.grouped_matmul %h weight(%wo) counts(%c) activation relu
      : tensor<32x64xf32>, tensor<4x64x32xbf16>, tensor<4xi64> -> tensor<32x32xf32>
  return
}
