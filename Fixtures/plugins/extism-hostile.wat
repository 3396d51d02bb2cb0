;; Hostile abi: extism plugin, one attack per export. Each must end in a typed error of the call
;; (or a bounded log), never in a crashed or hung worker or supervisor.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (memory (export "memory") 1)

  ;; An output handle and length far outside the kernel's memory.
  (func (export "bad_output") (result i32)
    (call $output_set (i64.const 0x7fffffff00) (i64.const 4096))
    (i32.const 0))

  ;; Grows its own memory until refused, then traps as a PDK does on a failed grow.
  (func (export "grow") (result i32)
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable)

  ;; A 32 MiB error message: the host reads only its head.
  (func (export "big_error") (result i32)
    (local $h i64)
    (local.set $h (call $alloc (i64.const 33554432)))
    (call $store_u8 (local.get $h) (i32.const 69))
    (call $error_set (local.get $h))
    (i32.const 1))

  ;; 20,000 log lines in one call (the rate limit is 100 a second).
  (func (export "flood") (result i32)
    (local $h i64) (local $i i32)
    (local.set $h (call $alloc (i64.const 5)))
    (call $store_u8 (local.get $h) (i32.const 102))
    (loop $more
      (call $log_info (local.get $h))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 20000))))
    (i32.const 0))

  ;; Hands the host handles that are not blocks.
  (func (export "forged_handle") (result i32)
    (drop (call $config_get (i64.const 0x7fffffff00)))
    (i32.const 0))

  ;; Never returns.
  (func (export "spin") (result i32)
    (loop $forever (br $forever))
    (i32.const 0)))
