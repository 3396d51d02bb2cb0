;; Hostile: answers bytes that are not JSON (and, after them, not UTF-8 either).
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "this is not json")
  (data (i32.const 32) "\ff\fe{\"success\":true}")
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  ;; Context length odd: not UTF-8; even: not JSON.
  (func (export "execute") (param $ptr i32) (param $len i32) (result i64)
    (if (result i64) (i32.and (local.get $len) (i32.const 1))
      (then (i64.or (i64.shl (i64.const 32) (i64.const 32)) (i64.const 18)))
      (else (i64.const 16)))))
