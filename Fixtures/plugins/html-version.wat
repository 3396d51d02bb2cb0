;; A plugin whose meta version is markup, {"success":true} to every call: a guest-supplied string
;; that the dashboard must show as text, never run.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"success\":true}") ;; 16 bytes
  (data (i32.const 64) "{\"name\":\"html-version\",\"version\":\"<script>alert(1)</script>\"}") ;; 61 bytes
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64) (i64.const 16))
  (func (export "meta") (result i64) (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 61))))
