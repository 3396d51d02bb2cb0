;; Test-only: attempts the forbidden operation numbered by the first number in its context (see
;; pv_sandbox_drill), through plugvisor.sandbox_drill (linked only under
;; `plugvisor start --sandbox-drill`). Under the seccomp filter most drills kill the worker with
;; SIGSYS before they return; one that returns answers "refused" when the kernel said no (a
;; negative result) and "the drill was not stopped" when it did what an attacker wanted.
(module
  (import "plugvisor" "sandbox_drill" (func $drill (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"success\":true,\"data\":\"the drill was not stopped\"}") ;; 51 bytes
  (data (i32.const 64) "{\"success\":true,\"data\":\"refused\"}") ;; 33 bytes
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func $digit (param $c i32) (result i32)
    (i32.and (i32.ge_u (local.get $c) (i32.const 48)) (i32.le_u (local.get $c) (i32.const 57))))
  (func (export "execute") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32) (local $c i32) (local $which i32) (local $seen i32)
    (block $done
      (loop $scan
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $c (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (if (call $digit (local.get $c))
          (then
            (local.set $seen (i32.const 1))
            (local.set $which (i32.add (i32.mul (local.get $which) (i32.const 10)) (i32.sub (local.get $c) (i32.const 48)))))
          (else (br_if $done (local.get $seen))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (if (result i64) (i32.lt_s (call $drill (local.get $which)) (i32.const 0))
      (then (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 33)))
      (else (i64.const 51)))))
