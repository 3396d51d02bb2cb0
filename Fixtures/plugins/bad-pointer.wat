;; Hostile: returns a result pointer far outside its memory, then (for "big") a length over it.
(module
  (memory (export "memory") 1)
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64)
    (i64.const 0xfffffff0_00000100)))
