;; Hostile: logs 300,000 lines in one call. The worker's rate limit must keep the supervisor's
;; memory and log bounded, and the call still answers.
(module
  (import "plugvisor" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "flood flood flood flood flood flood flood flood")
  (data (i32.const 64) "{\"success\":true,\"data\":\"flooded\"}") ;; 33 bytes
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64)
    (local $i i32)
    (loop $more
      (call $log (i32.const 2) (i32.const 0) (i32.const 47))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 300000))))
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 33))))
