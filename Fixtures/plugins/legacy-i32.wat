;; The original Go pattern's ABI: meta and execute return a bare i32 pointer to one JSON value
;; (followed here by a NUL and junk, which the host must not read as part of it).
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"success\":true,\"data\":{\"abi\":\"i32\",\"brace\":\"}\"}}\00garbage{{{")
  (data (i32.const 256) "{\"name\":\"legacy\",\"version\":\"0.9.0\",\"description\":\"Go-pattern guest\",\"author\":\"seed\"}\00")
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i32) (i32.const 0))
  (func (export "meta") (result i32) (i32.const 256)))
