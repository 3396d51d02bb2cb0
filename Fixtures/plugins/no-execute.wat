;; Broken: has no execute export, so it must be refused at load with a message naming it.
(module
  (memory (export "memory") 1)
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32)))
