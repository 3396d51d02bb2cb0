;; The Extism baseline's no-op plugin: ignores its input and outputs {"success":true}, the
;; answer plugvisor's own no-op fixture gives, so both hosts copy the same bytes out.
;; The kernel functions it uses are declared by hand (the Extism ABI: memory blocks in the
;; kernel's memory, addressed by u64 offsets).
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"success\":true}") ;; 16 bytes: two u64 stores
  (func (export "noop") (result i32)
    (local $block i64)
    (local.set $block (call $alloc (i64.const 16)))
    (call $store_u64 (local.get $block) (i64.load (i32.const 0)))
    (call $store_u64 (i64.add (local.get $block) (i64.const 8)) (i64.load (i32.const 8)))
    (call $output_set (local.get $block) (i64.const 16))
    (i32.const 0)))
