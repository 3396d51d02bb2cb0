;; Hostile: execute never returns. The supervisor must kill the worker at the call's timeout.
(module
  (memory (export "memory") 1)
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64)
    (loop $forever (br $forever))
    (i64.const 0)))
