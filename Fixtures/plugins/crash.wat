;; Hostile: crashes its whole worker process on every call. WASI's args_sizes_get with a pointer
;; at the end of memory trips a precondition inside WasmKit 0.4.2 (SIGILL): exactly the kind of
;; runtime bug that process isolation contains. Used to drive the restart policy to `failed`.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64)
    (drop (call $args_sizes_get (i32.const 0xfffffff0) (i32.const 0)))
    (i64.const 0)))
