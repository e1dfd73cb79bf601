;; The inner loop of rx-smtp's body encoder (lib/wire/body-encoder.ts), as WebAssembly with SIMD.
;;
;; Every bare CR and bare LF becomes CRLF (RFC 5321 §2.3.8) and, when asked, a "." that starts a
;; line is doubled (RFC 5321 §4.5.2). Text has a line end every few dozen bytes; a JS encoder
;; pays a native call (indexOf, copyWithin) per line end, which is what made it slow. Here the
;; input is scanned 16 bytes at a time for CR or LF, and each 16-byte block is stored to the
;; output before looking at it, so a run without line ends costs one load and one store per block.
;;
;; Compiled by scripts/build-wasm.js into lib/wire/encoder-wasm.ts; edit this file, then run
;; `node scripts/build-wasm.js`. lib/wire/encoder-kernel.ts owns the memory layout.
(module
  ;; Grown once by the loader to fit its input and output regions.
  (memory (export "memory") 1)

  ;; encode(in, end, out, dotStuff, atLineStart) -> output length
  ;;
  ;; Encodes memory[in, end) to memory[out, ...) and returns the number of bytes written.
  ;; The caller guarantees:
  ;;   - memory[end] holds a CR: a sentinel that stops the scan without a bounds check per block;
  ;;   - 16 readable bytes from `end` (the last block load reads past it);
  ;;   - 2 * (end - in) + 32 writable bytes from `out`: every input byte gives at most two output
  ;;     bytes, plus one for a dot stuffed at `in`, and stores may run up to 16 bytes ahead of
  ;;     the returned length;
  ;;   - the two regions do not overlap.
  ;; A CR at end - 1 becomes CRLF without looking at the next chunk: the caller drops an LF that
  ;; opens the next chunk. `atLineStart`: memory[in] starts a line (1) or not (0).
  (func (export "encode")
    (param $in i32) (param $end i32) (param $out i32) (param $dotStuff i32) (param $atLineStart i32)
    (result i32)
    (local $start i32) (local $block v128) (local $mask i32) (local $byte i32)
    (local $crs v128) (local $lfs v128)
    (local.set $start (local.get $out))
    (local.set $crs (i8x16.splat (i32.const 0x0d)))
    (local.set $lfs (i8x16.splat (i32.const 0x0a)))

    ;; A dot opening the input is stuffed when the previous chunk ended a line.
    ;; The dot is stored unconditionally and kept only by advancing $out, without a branch;
    ;; when not kept, the next block store overwrites it.
    (i32.store8 (local.get $out) (i32.const 0x2e))
    (local.set $out (i32.add (local.get $out)
      (i32.and (i32.and (local.get $dotStuff) (local.get $atLineStart))
               (i32.eq (i32.load8_u (local.get $in)) (i32.const 0x2e)))))

    (block $done
      (loop $scan
        ;; Copy the next 16 bytes as they are, then find the first CR or LF among them.
        (local.set $block (v128.load (local.get $in)))
        (v128.store (local.get $out) (local.get $block))
        (local.set $mask (i8x16.bitmask (v128.or
          (i8x16.eq (local.get $block) (local.get $crs))
          (i8x16.eq (local.get $block) (local.get $lfs)))))
        (if (i32.eqz (local.get $mask))
          (then
            (local.set $in (i32.add (local.get $in) (i32.const 16)))
            (local.set $out (i32.add (local.get $out) (i32.const 16)))
            (br $scan)))

        ;; Keep the bytes before the line end; the sentinel CR at $end means we are done.
        (local.set $mask (i32.ctz (local.get $mask)))
        (local.set $in (i32.add (local.get $in) (local.get $mask)))
        (local.set $out (i32.add (local.get $out) (local.get $mask)))
        (br_if $done (i32.ge_u (local.get $in) (local.get $end)))

        ;; CR, LF and CRLF all go out as CRLF. Input advances by one, or by two over a CRLF
        ;; (computed without a branch: line ends come in an unpredictable mix). At end - 1 the
        ;; byte after a CR is the sentinel CR, so a CRLF is never read across the end.
        (local.set $byte (i32.load8_u (local.get $in)))
        (i32.store16 (local.get $out) (i32.const 0x0a0d)) ;; little-endian: 0d 0a
        (local.set $out (i32.add (local.get $out) (i32.const 2)))
        (local.set $in (i32.add (i32.add (local.get $in) (i32.const 1))
          (i32.and (i32.eq (local.get $byte) (i32.const 0x0d))
                   (i32.eq (i32.load8_u offset=1 (local.get $in)) (i32.const 0x0a)))))

        ;; A new line starts here: stuff its dot as at the start (at $end it reads the sentinel).
        (i32.store8 (local.get $out) (i32.const 0x2e))
        (local.set $out (i32.add (local.get $out)
          (i32.and (local.get $dotStuff)
                   (i32.eq (i32.load8_u (local.get $in)) (i32.const 0x2e)))))
        (br $scan)))

    (i32.sub (local.get $out) (local.get $start))))
