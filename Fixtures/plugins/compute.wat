;; The benchmark's compute-heavy plugin: FNV-1a over 16 MiB (its 1 MiB buffer, 16 times) per
;; call, answering {"success":true,"data":"<hash in hex>"} so the work cannot be skipped.
(module
  (memory (export "memory") 18)
  (data (i32.const 0) "{\"success\":true,\"data\":\"00000000\"}") ;; 34 bytes, hex digits at 24..31
  (data (i32.const 64) "0123456789abcdef")
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64)
    (local $hash i32) (local $i i32) (local $round i32) (local $digit i32)
    (local.set $hash (i32.const 0x811c9dc5))
    (loop $rounds
      (local.set $i (i32.const 65536))
      (loop $bytes
        (local.set $hash (i32.mul (i32.xor (local.get $hash) (i32.load8_u (local.get $i))) (i32.const 0x01000193)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $bytes (i32.lt_u (local.get $i) (i32.const 1114112))))
      (local.set $round (i32.add (local.get $round) (i32.const 1)))
      (br_if $rounds (i32.lt_u (local.get $round) (i32.const 16))))
    (local.set $i (i32.const 31))
    (loop $hex
      (i32.store8 (local.get $i) (i32.load8_u (i32.add (i32.const 64) (i32.and (local.get $hash) (i32.const 15)))))
      (local.set $hash (i32.shr_u (local.get $hash) (i32.const 4)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $hex (i32.ge_u (local.get $i) (i32.const 24))))
    (i64.const 34)))
