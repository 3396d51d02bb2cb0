;; Hostile: imports a function the host does not offer; refused at load, by name.
(module
  (import "env" "system" (func $system (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64)
    (drop (call $system (i32.const 0)))
    (i64.const 0)))
