;; The benchmark's no-op plugin: answers {"success":true} whatever it is given.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"success\":true}") ;; 16 bytes
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64) (i64.const 16)))
