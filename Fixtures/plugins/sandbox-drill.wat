;; Test-only: attempts the forbidden syscall numbered by the first digit in its context, through
;; plugvisor.sandbox_drill (linked only under `plugvisor start --sandbox-drill`). Under the
;; seccomp filter the worker dies of SIGSYS before the drill returns.
(module
  (import "plugvisor" "sandbox_drill" (func $drill (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"success\":true,\"data\":\"the drill was not stopped\"}") ;; 51 bytes
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32) (local $c i32)
    (block $found
      (loop $scan
        (br_if $found (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $c (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 48)) (i32.le_u (local.get $c) (i32.const 57)))
          (then (drop (call $drill (i32.sub (local.get $c) (i32.const 48)))) (br $found)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (i64.const 51)))
