;; Hostile abi: extism plugin that asks for the kernel's memory itself, to write the host's
;; allocator state directly. The host links functions only: refused at load.
(module
  (import "extism:host/env" "memory" (memory 1))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (func (export "run") (result i32) (i32.const 0)))
