// A program of reductions on buffers (a matmul, a batch matmul and a reduction
// over two dimensions using linalg.index) on integer-valued data, so that
// every lowering computes exactly; it prints every output element.
#in3 = affine_map<(i, r, s) -> (i, r, s)>
#out1 = affine_map<(i, r, s) -> (i)>

func.func private @fill2(%m: memref<?x?xf32>, %mul: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c7 = arith.constant 7 : index
  %rows = memref.dim %m, %c0 : memref<?x?xf32>
  %cols = memref.dim %m, %c1 : memref<?x?xf32>
  scf.for %i = %c0 to %rows step %c1 {
    scf.for %j = %c0 to %cols step %c1 {
      %a = arith.muli %i, %mul : index
      %b = arith.addi %a, %j : index
      %r = arith.remui %b, %c7 : index
      %v = arith.index_cast %r : index to i32
      %f = arith.sitofp %v : i32 to f32
      memref.store %f, %m[%i, %j] : memref<?x?xf32>
    }
  }
  return
}

func.func private @print2(%m: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %rows = memref.dim %m, %c0 : memref<?x?xf32>
  %cols = memref.dim %m, %c1 : memref<?x?xf32>
  scf.for %i = %c0 to %rows step %c1 {
    scf.for %j = %c0 to %cols step %c1 {
      %v = memref.load %m[%i, %j] : memref<?x?xf32>
      vector.print %v : f32
    }
  }
  return
}

func.func @main() {
  %c3 = arith.constant 3 : index
  %c5 = arith.constant 5 : index
  %a = memref.alloc() : memref<5x7xf32>
  %b = memref.alloc() : memref<7x3xf32>
  %c = memref.alloc() : memref<5x3xf32>
  %ad = memref.cast %a : memref<5x7xf32> to memref<?x?xf32>
  %bd = memref.cast %b : memref<7x3xf32> to memref<?x?xf32>
  %cd = memref.cast %c : memref<5x3xf32> to memref<?x?xf32>
  func.call @fill2(%ad, %c3) : (memref<?x?xf32>, index) -> ()
  func.call @fill2(%bd, %c5) : (memref<?x?xf32>, index) -> ()
  func.call @fill2(%cd, %c3) : (memref<?x?xf32>, index) -> ()
  linalg.matmul ins(%a, %b : memref<5x7xf32>, memref<7x3xf32>) outs(%c : memref<5x3xf32>)
  func.call @print2(%cd) : (memref<?x?xf32>) -> ()

  %x = memref.alloc() : memref<2x5x7xf32>
  %y = memref.alloc() : memref<2x7x3xf32>
  %z = memref.alloc() : memref<2x5x3xf32>
  %x2 = memref.collapse_shape %x [[0, 1], [2]] : memref<2x5x7xf32> into memref<10x7xf32>
  %y2 = memref.collapse_shape %y [[0, 1], [2]] : memref<2x7x3xf32> into memref<14x3xf32>
  %z2 = memref.collapse_shape %z [[0, 1], [2]] : memref<2x5x3xf32> into memref<10x3xf32>
  %x2d = memref.cast %x2 : memref<10x7xf32> to memref<?x?xf32>
  %y2d = memref.cast %y2 : memref<14x3xf32> to memref<?x?xf32>
  %z2d = memref.cast %z2 : memref<10x3xf32> to memref<?x?xf32>
  func.call @fill2(%x2d, %c5) : (memref<?x?xf32>, index) -> ()
  func.call @fill2(%y2d, %c3) : (memref<?x?xf32>, index) -> ()
  func.call @fill2(%z2d, %c5) : (memref<?x?xf32>, index) -> ()
  linalg.batch_matmul ins(%x, %y : memref<2x5x7xf32>, memref<2x7x3xf32>) outs(%z : memref<2x5x3xf32>)
  func.call @print2(%z2d) : (memref<?x?xf32>) -> ()

  %w = memref.alloc() : memref<5x1xf32>
  %w1 = memref.collapse_shape %w [[0, 1]] : memref<5x1xf32> into memref<5xf32>
  %wd = memref.cast %w : memref<5x1xf32> to memref<?x?xf32>
  func.call @fill2(%wd, %c3) : (memref<?x?xf32>, index) -> ()
  %t = memref.expand_shape %a [[0], [1, 2]] output_shape [5, 7, 1] : memref<5x7xf32> into memref<5x7x1xf32>
  linalg.generic {indexing_maps = [#in3, #out1], iterator_types = ["parallel", "reduction", "reduction"]}
      ins(%t : memref<5x7x1xf32>) outs(%w1 : memref<5xf32>) {
  ^bb0(%v: f32, %acc: f32):
    %r = linalg.index 1 : index
    %ri = arith.index_cast %r : index to i32
    %rf = arith.sitofp %ri : i32 to f32
    %p = arith.mulf %v, %rf : f32
    %n = arith.addf %acc, %p : f32
    linalg.yield %n : f32
  }
  func.call @print2(%wd) : (memref<?x?xf32>) -> ()
  return
}
