;; abi: extism plugin that calls the host function hello_world in a tight loop: 3,000 round
;; trips to the embedding program in one call. Each is bounded; the call answers or times out.
(module
  (import "extism:host/user" "hello_world" (func $hello (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (func (export "flood") (result i32)
    (local $i i32)
    (loop $more
      (drop (call $hello (i64.const 0)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 3000))))
    (i32.const 0)))
