;; Hostile: asks for 1.25 GiB of initial memory; refused at load against the memory limit.
(module
  (memory (export "memory") 20000)
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64) (i64.const 0)))
