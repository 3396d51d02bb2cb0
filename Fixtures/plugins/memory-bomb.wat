;; Hostile: grows its memory one page at a time until memory.grow refuses (-1), then answers
;; {"success":true,"data":"<pages it ended with>"} (the count as 5 decimal digits, in a string).
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"success\":true,\"data\":\"00000\"}") ;; digits at 24..28, 31 bytes
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64)
    (local $pages i32) (local $i i32)
    (block $refused
      (loop $grow
        (br_if $refused (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $grow)))
    (local.set $pages (memory.size))
    (local.set $i (i32.const 28))
    (loop $digit
      (i32.store8 (local.get $i) (i32.add (i32.const 48) (i32.rem_u (local.get $pages) (i32.const 10))))
      (local.set $pages (i32.div_u (local.get $pages) (i32.const 10)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $digit (i32.ge_u (local.get $i) (i32.const 24))))
    (i64.const 31)))
