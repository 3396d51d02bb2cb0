;; Hostile: claims a 9 MiB answer (inside its memory, but over the host's 8 MiB result limit).
(module
  (memory (export "memory") 145)
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64)
    (i64.const 9437184)))
