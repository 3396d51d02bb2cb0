;; Hostile on demand: loops forever when the context contains "spin", else answers at once.
;; Lets one test show a timeout and then a good call on the fresh worker.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"success\":true,\"data\":\"quick\"}") ;; 31 bytes
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32)
    (block $absent
      (loop $scan
        (br_if $absent (i32.gt_u (i32.add (local.get $i) (i32.const 4)) (local.get $len)))
        ;; "spin" read as a little-endian i32
        (if (i32.eq (i32.load (i32.add (local.get $ptr) (local.get $i))) (i32.const 0x6e697073))
          (then (loop $forever (br $forever))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (i64.const 31)))
