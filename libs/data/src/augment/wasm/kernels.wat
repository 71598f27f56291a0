;; Augmentation kernels of dinoq, compiled by `npm run build:wasm` into kernels-bytes.ts.
;;
;; Images live in this module's memory in "planar rows": each image row holds its R, then G, then
;; B values as three segments of `stride` floats (the width rounded up to a multiple of 4), so
;; every loop works on whole f32x4 vectors. The lanes past the width are padding: they hold
;; finite values, are computed along with the rest and never read into a real pixel.
;;
;; All arithmetic is float32 (f32x4). Pointers and offsets are in bytes; lengths in floats.
(module
  (memory (export "memory") 1)

  ;; dst[i] = clamp(Σ_k w[k] · src[offs[k] + i], lo, hi) for i in [0, len), len > 0 a multiple
  ;; of 4. `n4` taps (a multiple of 4; callers pad with zero weights at a valid offset), summed in
  ;; tap order, four per sweep over the row, the partial sums kept in dst between sweeps.
  (func $sumRows (export "sumRows")
    (param $src i32) (param $offs i32) (param $ws i32) (param $n4 i32)
    (param $dst i32) (param $len i32) (param $lo f32) (param $hi f32)
    (local $i i32) (local $end i32) (local $first i32)
    (local $o0 i32) (local $o1 i32) (local $o2 i32) (local $o3 i32)
    (local $w0 v128) (local $w1 v128) (local $w2 v128) (local $w3 v128)
    (local $vlo v128) (local $vhi v128) (local $acc v128)
    (local.set $end (i32.shl (local.get $len) (i32.const 2)))
    (local.set $first (i32.const 1))
    (loop $groups
      (local.set $o0 (i32.add (local.get $src) (i32.load (local.get $offs))))
      (local.set $o1 (i32.add (local.get $src) (i32.load offset=4 (local.get $offs))))
      (local.set $o2 (i32.add (local.get $src) (i32.load offset=8 (local.get $offs))))
      (local.set $o3 (i32.add (local.get $src) (i32.load offset=12 (local.get $offs))))
      (local.set $w0 (v128.load32_splat (local.get $ws)))
      (local.set $w1 (v128.load32_splat offset=4 (local.get $ws)))
      (local.set $w2 (v128.load32_splat offset=8 (local.get $ws)))
      (local.set $w3 (v128.load32_splat offset=12 (local.get $ws)))
      ;; Only the last sweep clamps; the others clamp to ±∞, which leaves finite sums alone.
      (if (i32.eq (local.get $n4) (i32.const 4))
        (then
          (local.set $vlo (f32x4.splat (local.get $lo)))
          (local.set $vhi (f32x4.splat (local.get $hi))))
        (else
          (local.set $vlo (v128.const f32x4 -inf -inf -inf -inf))
          (local.set $vhi (v128.const f32x4 inf inf inf inf))))
      (local.set $i (i32.const 0))
      (loop $chunks
        (local.set $acc
          (select (result v128)
            (v128.const i32x4 0 0 0 0)
            (v128.load (i32.add (local.get $dst) (local.get $i)))
            (local.get $first)))
        (local.set $acc (f32x4.add (local.get $acc)
          (f32x4.mul (local.get $w0) (v128.load (i32.add (local.get $o0) (local.get $i))))))
        (local.set $acc (f32x4.add (local.get $acc)
          (f32x4.mul (local.get $w1) (v128.load (i32.add (local.get $o1) (local.get $i))))))
        (local.set $acc (f32x4.add (local.get $acc)
          (f32x4.mul (local.get $w2) (v128.load (i32.add (local.get $o2) (local.get $i))))))
        (local.set $acc (f32x4.add (local.get $acc)
          (f32x4.mul (local.get $w3) (v128.load (i32.add (local.get $o3) (local.get $i))))))
        (v128.store (i32.add (local.get $dst) (local.get $i))
          (f32x4.pmin (f32x4.pmax (local.get $acc) (local.get $vlo)) (local.get $vhi)))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br_if $chunks (i32.lt_u (local.get $i) (local.get $end))))
      (local.set $first (i32.const 0))
      (local.set $offs (i32.add (local.get $offs) (i32.const 16)))
      (local.set $ws (i32.add (local.get $ws) (i32.const 16)))
      (local.set $n4 (i32.sub (local.get $n4) (i32.const 4)))
      (br_if $groups (i32.gt_s (local.get $n4) (i32.const 0)))))

  ;; Horizontal resampling pass: each of `rows` interleaved RGB source rows (row y at
  ;; src + y·srcStride) to `outW` pixels of a planar row at dst + y·3·stride·4. Output pixel x
  ;; sums count[x] taps from source pixel start[x] on, weights ws[x·taps …], taken two at a time
  ;; (an odd count adds a zero-weight tap: the weights are zero past count[x], `taps` is even and
  ;; the source needs 32 bytes of padding after its last pixel). A pixel is one f32x4 load (R, G, B
  ;; and the next value, which is ignored). Rows go in pairs that share the weights; an odd last
  ;; row is paired with itself. `flip` writes pixel x at outW − 1 − x (a horizontal flip). Padding
  ;; lanes are set to 0.
  (func (export "resizeRows")
    (param $src i32) (param $srcStride i32) (param $rows i32) (param $outW i32) (param $stride i32)
    (param $start i32) (param $count i32) (param $ws i32) (param $taps i32) (param $flip i32)
    (param $dst i32)
    (local $y i32) (local $x i32) (local $k i32) (local $p i32) (local $w i32) (local $d i32)
    (local $seg i32) (local $next i32) (local $dstNext i32) (local $w0 v128) (local $w1 v128)
    (local $acc0 v128) (local $acc1 v128)
    (local.set $seg (i32.shl (local.get $stride) (i32.const 2)))
    (loop $rowLoop
      ;; Byte distance to the row paired with this one, in the source and in dst.
      (local.set $next (select (local.get $srcStride) (i32.const 0)
        (i32.lt_s (i32.add (local.get $y) (i32.const 1)) (local.get $rows))))
      (local.set $dstNext (select (i32.mul (local.get $seg) (i32.const 3)) (i32.const 0)
        (i32.lt_s (i32.add (local.get $y) (i32.const 1)) (local.get $rows))))
      (local.set $x (i32.const 0))
      (loop $pixels
        (local.set $acc0 (v128.const i32x4 0 0 0 0))
        (local.set $acc1 (v128.const i32x4 0 0 0 0))
        (local.set $p (i32.add (local.get $src)
          (i32.mul (i32.load (i32.add (local.get $start) (i32.shl (local.get $x) (i32.const 2))))
            (i32.const 12))))
        (local.set $w (i32.add (local.get $ws)
          (i32.shl (i32.mul (local.get $x) (local.get $taps)) (i32.const 2))))
        (local.set $k (i32.load (i32.add (local.get $count) (i32.shl (local.get $x) (i32.const 2)))))
        (loop $tapLoop
          (local.set $w0 (v128.load32_splat (local.get $w)))
          (local.set $w1 (v128.load32_splat offset=4 (local.get $w)))
          (local.set $acc0 (f32x4.add
            (f32x4.add (local.get $acc0) (f32x4.mul (local.get $w0) (v128.load (local.get $p))))
            (f32x4.mul (local.get $w1) (v128.load offset=12 (local.get $p)))))
          (local.set $acc1 (f32x4.add
            (f32x4.add (local.get $acc1)
              (f32x4.mul (local.get $w0) (v128.load (i32.add (local.get $p) (local.get $next)))))
            (f32x4.mul (local.get $w1) (v128.load offset=12 (i32.add (local.get $p) (local.get $next))))))
          (local.set $p (i32.add (local.get $p) (i32.const 24)))
          (local.set $w (i32.add (local.get $w) (i32.const 8)))
          (local.set $k (i32.sub (local.get $k) (i32.const 2)))
          (br_if $tapLoop (i32.gt_s (local.get $k) (i32.const 0))))
        (local.set $d (i32.add (local.get $dst) (i32.shl
          (select (i32.sub (i32.sub (local.get $outW) (i32.const 1)) (local.get $x)) (local.get $x)
            (local.get $flip))
          (i32.const 2))))
        (f32.store (local.get $d) (f32x4.extract_lane 0 (local.get $acc0)))
        (f32.store (i32.add (local.get $d) (local.get $seg)) (f32x4.extract_lane 1 (local.get $acc0)))
        (f32.store (i32.add (local.get $d) (i32.shl (local.get $seg) (i32.const 1)))
          (f32x4.extract_lane 2 (local.get $acc0)))
        (local.set $d (i32.add (local.get $d) (local.get $dstNext)))
        (f32.store (local.get $d) (f32x4.extract_lane 0 (local.get $acc1)))
        (f32.store (i32.add (local.get $d) (local.get $seg)) (f32x4.extract_lane 1 (local.get $acc1)))
        (f32.store (i32.add (local.get $d) (i32.shl (local.get $seg) (i32.const 1)))
          (f32x4.extract_lane 2 (local.get $acc1)))
        (local.set $x (i32.add (local.get $x) (i32.const 1)))
        (br_if $pixels (i32.lt_s (local.get $x) (local.get $outW))))
      (loop $padding
        (if (i32.lt_s (local.get $x) (local.get $stride))
          (then
            (local.set $d (i32.add (local.get $dst) (i32.shl (local.get $x) (i32.const 2))))
            (f32.store (local.get $d) (f32.const 0))
            (f32.store (i32.add (local.get $d) (local.get $seg)) (f32.const 0))
            (f32.store (i32.add (local.get $d) (i32.shl (local.get $seg) (i32.const 1))) (f32.const 0))
            (local.set $d (i32.add (local.get $d) (local.get $dstNext)))
            (f32.store (local.get $d) (f32.const 0))
            (f32.store (i32.add (local.get $d) (local.get $seg)) (f32.const 0))
            (f32.store (i32.add (local.get $d) (i32.shl (local.get $seg) (i32.const 1))) (f32.const 0))
            (local.set $x (i32.add (local.get $x) (i32.const 1)))
            (br $padding))))
      (local.set $src (i32.add (local.get $src) (i32.shl (local.get $srcStride) (i32.const 1))))
      (local.set $dst (i32.add (local.get $dst) (i32.mul (local.get $seg) (i32.const 6))))
      (local.set $y (i32.add (local.get $y) (i32.const 2)))
      (br_if $rowLoop (i32.lt_s (local.get $y) (local.get $rows)))))

  ;; One extended box filter (Gwosdek et al., as PIL's box blur) along `len` floats (len > 0, a
  ;; multiple of 4): dst[i] = ww · Σ_{k=1}^{n−2} src[offs[k] + i] + fw · (src[offs[0] + i] +
  ;; src[offs[n−1] + i]), for n = 2r + 3 taps: the 2r + 1 whole taps and the two fractional ones.
  (func $boxRows
    (param $src i32) (param $offs i32) (param $n i32) (param $ww f32) (param $fw f32)
    (param $dst i32) (param $len i32)
    (local $i i32) (local $end i32) (local $k i32) (local $first i32) (local $last i32)
    (local $innerEnd i32) (local $vww v128) (local $vfw v128) (local $sum v128)
    (local.set $end (i32.shl (local.get $len) (i32.const 2)))
    (local.set $vww (f32x4.splat (local.get $ww)))
    (local.set $vfw (f32x4.splat (local.get $fw)))
    (local.set $first (i32.add (local.get $src) (i32.load (local.get $offs))))
    (local.set $innerEnd (i32.add (local.get $offs) (i32.shl (i32.sub (local.get $n) (i32.const 1))
      (i32.const 2))))
    (local.set $last (i32.add (local.get $src) (i32.load (local.get $innerEnd))))
    (loop $chunks
      (local.set $sum (v128.const i32x4 0 0 0 0))
      (local.set $k (i32.add (local.get $offs) (i32.const 4)))
      (loop $inner
        (local.set $sum (f32x4.add (local.get $sum)
          (v128.load (i32.add (i32.add (local.get $src) (i32.load (local.get $k))) (local.get $i)))))
        (local.set $k (i32.add (local.get $k) (i32.const 4)))
        (br_if $inner (i32.lt_u (local.get $k) (local.get $innerEnd))))
      (v128.store (i32.add (local.get $dst) (local.get $i))
        (f32x4.add
          (f32x4.mul (local.get $vww) (local.get $sum))
          (f32x4.mul (local.get $vfw)
            (f32x4.add
              (v128.load (i32.add (local.get $first) (local.get $i)))
              (v128.load (i32.add (local.get $last) (local.get $i)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br_if $chunks (i32.lt_u (local.get $i) (local.get $end)))))

  ;; Horizontal box pass over every segment of an image, in place: each segment is first copied
  ;; into `line` with its edge values repeated r + 1 times on the left and to the end of the
  ;; line on the right (PIL repeats the border pixel); `offs` is scratch for n = 2r + 3 offsets.
  ;; `line` holds stride + 2r + 6 floats.
  (func (export "boxRowsH")
    (param $img i32) (param $height i32) (param $width i32) (param $stride i32) (param $r i32)
    (param $ww f32) (param $fw f32) (param $line i32) (param $offs i32)
    (local $n i32) (local $k i32) (local $seg i32) (local $segs i32) (local $s i32)
    (local $j i32) (local $lineLen i32) (local $edge f32)
    (local.set $n (i32.add (i32.shl (local.get $r) (i32.const 1)) (i32.const 3)))
    (loop $setOffsets
      (i32.store (i32.add (local.get $offs) (i32.shl (local.get $k) (i32.const 2)))
        (i32.shl (local.get $k) (i32.const 2)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $setOffsets (i32.lt_s (local.get $k) (local.get $n))))
    (local.set $lineLen (i32.add (local.get $stride) (i32.add (local.get $n) (i32.const 3))))
    (local.set $segs (i32.mul (local.get $height) (i32.const 3)))
    (local.set $seg (local.get $img))
    (loop $segments
      (local.set $edge (f32.load (local.get $seg)))
      (local.set $j (i32.const 0))
      (loop $left
        (f32.store (i32.add (local.get $line) (i32.shl (local.get $j) (i32.const 2))) (local.get $edge))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $left (i32.le_s (local.get $j) (local.get $r))))
      (memory.copy (i32.add (local.get $line) (i32.shl (local.get $j) (i32.const 2)))
        (local.get $seg) (i32.shl (local.get $width) (i32.const 2)))
      (local.set $j (i32.add (local.get $j) (local.get $width)))
      (local.set $edge (f32.load (i32.add (local.get $seg)
        (i32.shl (i32.sub (local.get $width) (i32.const 1)) (i32.const 2)))))
      (loop $right
        (f32.store (i32.add (local.get $line) (i32.shl (local.get $j) (i32.const 2))) (local.get $edge))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $right (i32.lt_s (local.get $j) (local.get $lineLen))))
      (call $boxRows (local.get $line) (local.get $offs) (local.get $n) (local.get $ww) (local.get $fw)
        (local.get $seg) (local.get $stride))
      (local.set $seg (i32.add (local.get $seg) (i32.shl (local.get $stride) (i32.const 2))))
      (local.set $s (i32.add (local.get $s) (i32.const 1)))
      (br_if $segments (i32.lt_s (local.get $s) (local.get $segs)))))

  ;; Vertical box pass from the image at src into the one at dst (not in place): output row y
  ;; takes rows y − r − 1 … y + r + 1, clamped to the image.
  (func (export "boxRowsV")
    (param $src i32) (param $dst i32) (param $height i32) (param $stride i32) (param $r i32)
    (param $ww f32) (param $fw f32) (param $offs i32)
    (local $n i32) (local $k i32) (local $y i32) (local $yy i32) (local $rowBytes i32)
    (local.set $n (i32.add (i32.shl (local.get $r) (i32.const 1)) (i32.const 3)))
    (local.set $rowBytes (i32.mul (local.get $stride) (i32.const 12)))
    (loop $rowLoop
      (local.set $k (i32.const 0))
      (loop $setOffsets
        (local.set $yy (i32.sub (i32.add (local.get $y) (local.get $k))
          (i32.add (local.get $r) (i32.const 1))))
        (local.set $yy (select (i32.const 0) (local.get $yy) (i32.lt_s (local.get $yy) (i32.const 0))))
        (local.set $yy (select (i32.sub (local.get $height) (i32.const 1)) (local.get $yy)
          (i32.ge_s (local.get $yy) (local.get $height))))
        (i32.store (i32.add (local.get $offs) (i32.shl (local.get $k) (i32.const 2)))
          (i32.mul (local.get $yy) (local.get $rowBytes)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br_if $setOffsets (i32.lt_s (local.get $k) (local.get $n))))
      (call $boxRows (local.get $src) (local.get $offs) (local.get $n) (local.get $ww) (local.get $fw)
        (i32.add (local.get $dst) (i32.mul (local.get $y) (local.get $rowBytes)))
        (i32.mul (local.get $stride) (i32.const 3)))
      (local.set $y (i32.add (local.get $y) (i32.const 1)))
      (br_if $rowLoop (i32.lt_s (local.get $y) (local.get $height)))))

  ;; v = clamp(a · v + c) over `len` floats (a multiple of 4): brightness is (factor, 0), a blend
  ;; with a constant is (factor, (1 − factor) · constant).
  (func (export "scaleShift") (param $p i32) (param $len i32) (param $a f32) (param $c f32)
    (local $end i32) (local $va v128) (local $vc v128)
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $len) (i32.const 2))))
    (local.set $va (f32x4.splat (local.get $a)))
    (local.set $vc (f32x4.splat (local.get $c)))
    (loop $chunks
      (v128.store (local.get $p) (f32x4.pmin
        (f32x4.pmax (f32x4.add (f32x4.mul (local.get $va) (v128.load (local.get $p))) (local.get $vc)) (v128.const f32x4 0 0 0 0))
        (v128.const f32x4 255 255 255 255)))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (br_if $chunks (i32.lt_u (local.get $p) (local.get $end)))))

  ;; PIL's solarize with threshold 128 over `len` floats: v ≥ 128 becomes 255 − v.
  (func (export "solarize") (param $p i32) (param $len i32)
    (local $end i32) (local $v v128)
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $len) (i32.const 2))))
    (loop $chunks
      (local.set $v (v128.load (local.get $p)))
      (v128.store (local.get $p)
        (v128.bitselect
          (f32x4.sub (v128.const f32x4 255 255 255 255) (local.get $v))
          (local.get $v)
          (f32x4.ge (local.get $v) (v128.const f32x4 128 128 128 128))))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (br_if $chunks (i32.lt_u (local.get $p) (local.get $end)))))

  ;; Mean luma of the real pixels (padding lanes masked out): per-row sums in float32, their
  ;; total in float64.
  (func (export "meanLuma") (param $img i32) (param $height i32) (param $width i32) (param $stride i32)
    (result f64)
    (local $y i32) (local $x i32) (local $p i32) (local $seg i32) (local $sum v128) (local $total f64)
    (local.set $seg (i32.shl (local.get $stride) (i32.const 2)))
    (loop $rowLoop
      (local.set $sum (v128.const i32x4 0 0 0 0))
      (local.set $x (i32.const 0))
      (loop $chunks
        (local.set $p (i32.add (local.get $img) (i32.shl (local.get $x) (i32.const 2))))
        (local.set $sum (f32x4.add (local.get $sum)
          (v128.and
            (f32x4.add
              (f32x4.add (f32x4.mul (v128.load (local.get $p)) (v128.const f32x4 0.299 0.299 0.299 0.299))
                (f32x4.mul (v128.load (i32.add (local.get $p) (local.get $seg))) (v128.const f32x4 0.587 0.587 0.587 0.587)))
              (f32x4.mul (v128.load (i32.add (local.get $p) (i32.shl (local.get $seg) (i32.const 1)))) (v128.const f32x4 0.114 0.114 0.114 0.114)))
            (i32x4.lt_s
              (i32x4.add (i32x4.splat (local.get $x)) (v128.const i32x4 0 1 2 3))
              (i32x4.splat (local.get $width))))))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (br_if $chunks (i32.lt_s (local.get $x) (local.get $width))))
      (local.set $total (f64.add (local.get $total) (f64.promote_f32
        (f32.add
          (f32.add (f32x4.extract_lane 0 (local.get $sum)) (f32x4.extract_lane 1 (local.get $sum)))
          (f32.add (f32x4.extract_lane 2 (local.get $sum)) (f32x4.extract_lane 3 (local.get $sum)))))))
      (local.set $img (i32.add (local.get $img) (i32.mul (local.get $seg) (i32.const 3))))
      (local.set $y (i32.add (local.get $y) (i32.const 1)))
      (br_if $rowLoop (i32.lt_s (local.get $y) (local.get $height))))
    (f64.div (local.get $total) (f64.convert_i32_s (i32.mul (local.get $height) (local.get $width)))))

  ;; Per-pixel colour ops, `op` selecting which: 0 grayscale (luma in all three channels),
  ;; 1 saturation (blend with the pixel's luma by `amount`). Visits every 4 pixels of every row,
  ;; padding too.
  (func (export "pixelOp") (param $img i32) (param $height i32) (param $stride i32) (param $op i32)
    (param $amount f32)
    (local $p i32) (local $end i32) (local $rowEnd i32) (local $seg i32)
    (local $r v128) (local $g v128) (local $b v128) (local $l v128) (local $va v128)
    (local.set $seg (i32.shl (local.get $stride) (i32.const 2)))
    (local.set $va (f32x4.splat (local.get $amount)))
    (local.set $p (local.get $img))
    (local.set $end (i32.add (local.get $img) (i32.mul (i32.mul (local.get $seg) (i32.const 3))
      (local.get $height))))
    (loop $rowLoop
      (local.set $rowEnd (i32.add (local.get $p) (local.get $seg)))
      (loop $chunks
        (local.set $r (v128.load (local.get $p)))
        (local.set $g (v128.load (i32.add (local.get $p) (local.get $seg))))
        (local.set $b (v128.load (i32.add (local.get $p) (i32.shl (local.get $seg) (i32.const 1)))))
        (block $stored
          (if (i32.eq (local.get $op) (i32.const 0))
            (then
              (local.set $l (f32x4.add
                (f32x4.add (f32x4.mul (local.get $r) (v128.const f32x4 0.299 0.299 0.299 0.299))
                  (f32x4.mul (local.get $g) (v128.const f32x4 0.587 0.587 0.587 0.587)))
                (f32x4.mul (local.get $b) (v128.const f32x4 0.114 0.114 0.114 0.114))))
              (local.set $r (local.get $l))
              (local.set $g (local.get $l))
              (local.set $b (local.get $l)))
            (else
              (local.set $l (f32x4.mul
                (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $va))
                (f32x4.add
                  (f32x4.add (f32x4.mul (local.get $r) (v128.const f32x4 0.299 0.299 0.299 0.299))
                    (f32x4.mul (local.get $g) (v128.const f32x4 0.587 0.587 0.587 0.587)))
                  (f32x4.mul (local.get $b) (v128.const f32x4 0.114 0.114 0.114 0.114)))))
              (local.set $r (f32x4.pmin
                (f32x4.pmax (f32x4.add (f32x4.mul (local.get $va) (local.get $r)) (local.get $l)) (v128.const f32x4 0 0 0 0))
                (v128.const f32x4 255 255 255 255)))
              (local.set $g (f32x4.pmin
                (f32x4.pmax (f32x4.add (f32x4.mul (local.get $va) (local.get $g)) (local.get $l)) (v128.const f32x4 0 0 0 0))
                (v128.const f32x4 255 255 255 255)))
              (local.set $b (f32x4.pmin
                (f32x4.pmax (f32x4.add (f32x4.mul (local.get $va) (local.get $b)) (local.get $l)) (v128.const f32x4 0 0 0 0))
                (v128.const f32x4 255 255 255 255)))))
          (v128.store (local.get $p) (local.get $r))
          (v128.store (i32.add (local.get $p) (local.get $seg)) (local.get $g))
          (v128.store (i32.add (local.get $p) (i32.shl (local.get $seg) (i32.const 1))) (local.get $b)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br_if $chunks (i32.lt_u (local.get $p) (local.get $rowEnd))))
      (local.set $p (i32.add (local.get $p) (i32.shl (local.get $seg) (i32.const 1))))
      (br_if $rowLoop (i32.lt_u (local.get $p) (local.get $end)))))

  ;; Hue rotation by `shift` turns in HSV space (torchvision's adjust_hue), four pixels at a time,
  ;; padding too. In sextants: h ∈ [0, 6) from the max channel, shifted by 6·shift and wrapped;
  ;; then back to RGB from (h, chroma, max). Gray pixels (chroma 0) have no hue and keep their values.
  (func (export "hue") (param $img i32) (param $height i32) (param $stride i32) (param $amount f32)
    (local $p i32) (local $end i32) (local $rowEnd i32) (local $seg i32)
    (local $r v128) (local $g v128) (local $b v128) (local $shift v128)
    (local $max v128) (local $chroma v128) (local $isR v128) (local $isG v128) (local $h v128)
    (local $sector v128) (local $f v128) (local $lo v128) (local $q v128) (local $t v128)
    (local $s1 v128) (local $s2 v128) (local $s3 v128) (local $s4 v128) (local $s5 v128)
    (local $nr v128) (local $ng v128) (local $nb v128) (local $keep v128)
    (local.set $seg (i32.shl (local.get $stride) (i32.const 2)))
    (local.set $shift (f32x4.splat (local.get $amount)))
    (local.set $p (local.get $img))
    (local.set $end (i32.add (local.get $img) (i32.mul (i32.mul (local.get $seg) (i32.const 3))
      (local.get $height))))
    (loop $rowLoop
      (local.set $rowEnd (i32.add (local.get $p) (local.get $seg)))
      (loop $chunks
        (local.set $r (v128.load (local.get $p)))
        (local.set $g (v128.load (i32.add (local.get $p) (local.get $seg))))
        (local.set $b (v128.load (i32.add (local.get $p) (i32.shl (local.get $seg) (i32.const 1)))))
        (local.set $max (f32x4.pmax (f32x4.pmax (local.get $r) (local.get $g)) (local.get $b)))
        (local.set $chroma (f32x4.sub (local.get $max)
          (f32x4.pmin (f32x4.pmin (local.get $r) (local.get $g)) (local.get $b))))
        (local.set $isR (f32x4.eq (local.get $max) (local.get $r)))
        (local.set $isG (v128.andnot (f32x4.eq (local.get $max) (local.get $g)) (local.get $isR)))
        (local.set $h (f32x4.add
          (v128.bitselect (v128.const f32x4 0 0 0 0)
            (v128.bitselect (v128.const f32x4 2 2 2 2) (v128.const f32x4 4 4 4 4) (local.get $isG))
            (local.get $isR))
          (f32x4.div
            (v128.bitselect (f32x4.sub (local.get $g) (local.get $b))
              (v128.bitselect (f32x4.sub (local.get $b) (local.get $r)) (f32x4.sub (local.get $r) (local.get $g))
                (local.get $isG))
              (local.get $isR))
            (local.get $chroma))))
        (local.set $h (f32x4.add (local.get $h) (f32x4.mul (local.get $shift) (v128.const f32x4 6 6 6 6))))
        (local.set $h (f32x4.sub (local.get $h) (f32x4.mul (v128.const f32x4 6 6 6 6)
          (f32x4.floor (f32x4.mul (local.get $h) (v128.const f32x4 0x1.555556p-3 0x1.555556p-3 0x1.555556p-3 0x1.555556p-3))))))
        ;; h/6 may round to the next integer just below a multiple of 6, leaving h slightly negative.
        (local.set $h (v128.bitselect (f32x4.add (local.get $h) (v128.const f32x4 6 6 6 6)) (local.get $h)
          (f32x4.lt (local.get $h) (v128.const f32x4 0 0 0 0))))
        (local.set $f (f32x4.floor (local.get $h)))
        (local.set $sector (i32x4.trunc_sat_f32x4_s (local.get $f)))
        (local.set $f (f32x4.sub (local.get $h) (local.get $f)))
        (local.set $lo (f32x4.sub (local.get $max) (local.get $chroma)))
        (local.set $q (f32x4.sub (local.get $max) (f32x4.mul (local.get $chroma) (local.get $f))))
        (local.set $t (f32x4.add (local.get $lo) (f32x4.mul (local.get $chroma) (local.get $f))))
        (local.set $s1 (i32x4.eq (local.get $sector) (v128.const i32x4 1 1 1 1)))
        (local.set $s2 (i32x4.eq (local.get $sector) (v128.const i32x4 2 2 2 2)))
        (local.set $s3 (i32x4.eq (local.get $sector) (v128.const i32x4 3 3 3 3)))
        (local.set $s4 (i32x4.eq (local.get $sector) (v128.const i32x4 4 4 4 4)))
        (local.set $s5 (i32x4.eq (local.get $sector) (v128.const i32x4 5 5 5 5)))
        ;; Sector 0 (and 6, where the wrap rounds up to 6) is (max, t, lo); the others by mask.
        (local.set $nr (v128.bitselect (local.get $q) (local.get $max) (local.get $s1)))
        (local.set $nr (v128.bitselect (local.get $lo) (local.get $nr) (v128.or (local.get $s2) (local.get $s3))))
        (local.set $nr (v128.bitselect (local.get $t) (local.get $nr) (local.get $s4)))
        (local.set $ng (v128.bitselect (local.get $max) (local.get $t) (v128.or (local.get $s1) (local.get $s2))))
        (local.set $ng (v128.bitselect (local.get $q) (local.get $ng) (local.get $s3)))
        (local.set $ng (v128.bitselect (local.get $lo) (local.get $ng) (v128.or (local.get $s4) (local.get $s5))))
        (local.set $nb (v128.bitselect (local.get $t) (local.get $lo) (local.get $s2)))
        (local.set $nb (v128.bitselect (local.get $max) (local.get $nb) (v128.or (local.get $s3) (local.get $s4))))
        (local.set $nb (v128.bitselect (local.get $q) (local.get $nb) (local.get $s5)))
        (local.set $keep (f32x4.gt (local.get $chroma) (v128.const f32x4 0 0 0 0)))
        (v128.store (local.get $p)
          (f32x4.pmin
            (f32x4.pmax (v128.bitselect (local.get $nr) (local.get $r) (local.get $keep)) (v128.const f32x4 0 0 0 0))
            (v128.const f32x4 255 255 255 255)))
        (v128.store (i32.add (local.get $p) (local.get $seg))
          (f32x4.pmin
            (f32x4.pmax (v128.bitselect (local.get $ng) (local.get $g) (local.get $keep)) (v128.const f32x4 0 0 0 0))
            (v128.const f32x4 255 255 255 255)))
        (v128.store (i32.add (local.get $p) (i32.shl (local.get $seg) (i32.const 1)))
          (f32x4.pmin
            (f32x4.pmax (v128.bitselect (local.get $nb) (local.get $b) (local.get $keep)) (v128.const f32x4 0 0 0 0))
            (v128.const f32x4 255 255 255 255)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br_if $chunks (i32.lt_u (local.get $p) (local.get $rowEnd))))
      (local.set $p (i32.add (local.get $p) (i32.shl (local.get $seg) (i32.const 1))))
      (br_if $rowLoop (i32.lt_u (local.get $p) (local.get $end)))))

  ;; In place over `len` interleaved RGB floats (len > 0), 12 (four pixels) at a time, so the last
  ;; group may run up to 11 floats past: v · scale[c] − shift[c] for channel c.
  (func (export "normalize") (param $p i32) (param $len i32)
    (param $s0 f32) (param $s1 f32) (param $s2 f32) (param $m0 f32) (param $m1 f32) (param $m2 f32)
    (local $end i32) (local $sa v128) (local $sb v128) (local $sc v128)
    (local $ma v128) (local $mb v128) (local $mc v128)
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $len) (i32.const 2))))
    ;; The channel pattern repeats every three vectors: (0 1 2 0) (1 2 0 1) (2 0 1 2).
    (local.set $sa (f32x4.replace_lane 1 (f32x4.replace_lane 2 (f32x4.splat (local.get $s0)) (local.get $s2))
      (local.get $s1)))
    (local.set $sb (f32x4.replace_lane 1 (f32x4.replace_lane 2 (f32x4.splat (local.get $s1)) (local.get $s0))
      (local.get $s2)))
    (local.set $sc (f32x4.replace_lane 1 (f32x4.replace_lane 2 (f32x4.splat (local.get $s2)) (local.get $s1))
      (local.get $s0)))
    (local.set $ma (f32x4.replace_lane 1 (f32x4.replace_lane 2 (f32x4.splat (local.get $m0)) (local.get $m2))
      (local.get $m1)))
    (local.set $mb (f32x4.replace_lane 1 (f32x4.replace_lane 2 (f32x4.splat (local.get $m1)) (local.get $m0))
      (local.get $m2)))
    (local.set $mc (f32x4.replace_lane 1 (f32x4.replace_lane 2 (f32x4.splat (local.get $m2)) (local.get $m1))
      (local.get $m0)))
    (loop $groups
      (v128.store (local.get $p)
        (f32x4.sub (f32x4.mul (v128.load (local.get $p)) (local.get $sa)) (local.get $ma)))
      (v128.store offset=16 (local.get $p)
        (f32x4.sub (f32x4.mul (v128.load offset=16 (local.get $p)) (local.get $sb)) (local.get $mb)))
      (v128.store offset=32 (local.get $p)
        (f32x4.sub (f32x4.mul (v128.load offset=32 (local.get $p)) (local.get $sc)) (local.get $mc)))
      (local.set $p (i32.add (local.get $p) (i32.const 48)))
      (br_if $groups (i32.lt_u (local.get $p) (local.get $end)))))

  ;; Planar rows to interleaved RGB (row y at out + y·width·12), four pixels (three f32x4) at a
  ;; time; the last group of a row may run past it (into the next row, written afterwards, or
  ;; 12 floats of padding after the last).
  (func (export "interleave") (param $img i32) (param $height i32) (param $width i32) (param $stride i32)
    (param $out i32)
    (local $y i32) (local $x i32) (local $p i32) (local $o i32) (local $seg i32)
    (local $r v128) (local $g v128) (local $b v128)
    (local.set $seg (i32.shl (local.get $stride) (i32.const 2)))
    (loop $rowLoop
      (local.set $x (i32.const 0))
      (local.set $p (local.get $img))
      (local.set $o (i32.add (local.get $out) (i32.mul (local.get $y) (i32.mul (local.get $width) (i32.const 12)))))
      (loop $chunks
        (local.set $r (v128.load (local.get $p)))
        (local.set $g (v128.load (i32.add (local.get $p) (local.get $seg))))
        (local.set $b (v128.load (i32.add (local.get $p) (i32.shl (local.get $seg) (i32.const 1)))))
        ;; (r0 g0 b0 r1) (g1 b1 r2 g2) (b2 r3 g3 b3)
        (v128.store (local.get $o)
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 8 9 10 11
            (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $r) (local.get $g))
            (local.get $b)))
        (v128.store offset=16 (local.get $o)
          (i8x16.shuffle 0 1 2 3 4 5 6 7 24 25 26 27 8 9 10 11
            (i8x16.shuffle 4 5 6 7 20 21 22 23 8 9 10 11 24 25 26 27 (local.get $g) (local.get $b))
            (local.get $r)))
        (v128.store offset=32 (local.get $o)
          (i8x16.shuffle 8 9 10 11 16 17 18 19 20 21 22 23 12 13 14 15
            (local.get $b)
            (i8x16.shuffle 12 13 14 15 28 29 30 31 12 13 14 15 28 29 30 31 (local.get $r) (local.get $g))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (local.set $o (i32.add (local.get $o) (i32.const 48)))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (br_if $chunks (i32.lt_s (local.get $x) (local.get $width))))
      (local.set $img (i32.add (local.get $img) (i32.mul (local.get $seg) (i32.const 3))))
      (local.set $y (i32.add (local.get $y) (i32.const 1)))
      (br_if $rowLoop (i32.lt_s (local.get $y) (local.get $height)))))

  ;; Interleaved RGB (row y at src + y·width·12) to planar rows, padding lanes set to 0.
  (func (export "deinterleave") (param $src i32) (param $height i32) (param $width i32) (param $stride i32)
    (param $img i32)
    (local $y i32) (local $x i32) (local $seg i32) (local $d i32)
    (local.set $seg (i32.shl (local.get $stride) (i32.const 2)))
    (loop $rowLoop
      (local.set $x (i32.const 0))
      (loop $pixels
        (local.set $d (i32.add (local.get $img) (i32.shl (local.get $x) (i32.const 2))))
        (if (i32.lt_s (local.get $x) (local.get $width))
          (then
            (f32.store (local.get $d) (f32.load (local.get $src)))
            (f32.store (i32.add (local.get $d) (local.get $seg)) (f32.load offset=4 (local.get $src)))
            (f32.store (i32.add (local.get $d) (i32.shl (local.get $seg) (i32.const 1)))
              (f32.load offset=8 (local.get $src)))
            (local.set $src (i32.add (local.get $src) (i32.const 12))))
          (else
            (f32.store (local.get $d) (f32.const 0))
            (f32.store (i32.add (local.get $d) (local.get $seg)) (f32.const 0))
            (f32.store (i32.add (local.get $d) (i32.shl (local.get $seg) (i32.const 1))) (f32.const 0))))
        (local.set $x (i32.add (local.get $x) (i32.const 1)))
        (br_if $pixels (i32.lt_s (local.get $x) (local.get $stride))))
      (local.set $img (i32.add (local.get $img) (i32.mul (local.get $seg) (i32.const 3))))
      (local.set $y (i32.add (local.get $y) (i32.const 1)))
      (br_if $rowLoop (i32.lt_s (local.get $y) (local.get $height))))))
