;; Answers {"success":true,"data":"v2"} and meta version 2.0.0: two builds of "one plugin",
;; for the hot reload tests.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"success\":true,\"data\":\"v2\"}") ;; 28 bytes
  (data (i32.const 64) "{\"name\":\"versioned\",\"version\":\"2.0.0\"}") ;; 38 bytes
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64) (i64.const 28))
  (func (export "meta") (result i64) (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 38))))
