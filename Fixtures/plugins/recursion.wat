;; Hostile: unbounded recursion; WasmKit's stack limit turns it into a trap.
(module
  (memory (export "memory") 1)
  (func $down (param $n i32) (result i32) (call $down (i32.add (local.get $n) (i32.const 1))))
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64)
    (i64.extend_i32_u (call $down (i32.const 0)))))
