;; Hostile: execute traps (unreachable) unless the context's first parameter byte is 'o' ("ok"),
;; so one worker can show a trap followed by a good call.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"success\":true,\"data\":\"survived\"}") ;; 34 bytes
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32)
    ;; Look for the byte sequence "ok" anywhere in the context.
    (block $found
      (loop $scan
        (if (i32.ge_u (i32.add (local.get $i) (i32.const 1)) (local.get $len)) (then unreachable))
        (br_if $found (i32.eq (i32.load16_u (i32.add (local.get $ptr) (local.get $i))) (i32.const 0x6b6f)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (i64.const 34)))
