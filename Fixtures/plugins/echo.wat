;; echo: answers {"success":true,"data":<the context it was given>}.
;; The smallest complete plugvisor plugin: memory, allocate, deallocate, execute (+ meta).
(module
  (memory (export "memory") 1)
  ;; One arena per call: the input lands at 1024, the answer right after it.
  (global $next (mut i32) (i32.const 1024))
  (data (i32.const 0) "{\"success\":true,\"data\":")                                  ;; 23 bytes
  (data (i32.const 64) "{\"name\":\"echo\",\"version\":\"1.0.0\",\"description\":\"Echoes its context\",\"author\":\"plugvisor\"}") ;; 89 bytes

  ;; Grows memory so that [0, end) is addressable; traps (unreachable) if it cannot.
  (func $reserve (param $end i32)
    (local $have i32)
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow (i32.div_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535)) (i32.const 65536)))
              (i32.const -1))
          (then unreachable)))))

  (func (export "allocate") (param $size i32) (result i32)
    (call $reserve (i32.add (i32.const 1024) (local.get $size)))
    (global.set $next (i32.add (i32.const 1024) (local.get $size)))
    (i32.const 1024))

  (func (export "deallocate") (param i32 i32))

  (func (export "execute") (param $ptr i32) (param $len i32) (result i64)
    (local $out i32) (local $total i32)
    (local.set $out (global.get $next))
    (local.set $total (i32.add (local.get $len) (i32.const 24)))
    (call $reserve (i32.add (local.get $out) (local.get $total)))
    (memory.copy (local.get $out) (i32.const 0) (i32.const 23))
    (memory.copy (i32.add (local.get $out) (i32.const 23)) (local.get $ptr) (local.get $len))
    (i32.store8 (i32.add (local.get $out) (i32.add (local.get $len) (i32.const 23))) (i32.const 125)) ;; '}'
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32)) (i64.extend_i32_u (local.get $total))))

  (func (export "meta") (result i64)
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 89))))
