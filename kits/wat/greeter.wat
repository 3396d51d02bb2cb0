;; greeter: a plugvisor plugin in WebAssembly text, no kit. Answers
;; {"success":true,"data":{"message":"Hello, NAME!"}} for the context's parameters.name, logs the
;; message, and fails politely without a name. The name is copied as the context spells it, JSON
;; escapes and all, so the answer stays valid JSON without decoding anything.
;; It exports `meta` too, so that `plugvisor status` shows its version.
;; Memory: constants below 1024, then an arena for the buffers handed to the host, which empties
;; once every one of them has been freed.
(module
  (import "plugvisor" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $arena_start i32 (i32.const 1024))
  (global $arena_next (mut i32) (i32.const 1024))
  (global $arena_live (mut i32) (i32.const 0))

  (data (i32.const 0)   "parameters")                                           ;; 10 bytes
  (data (i32.const 16)  "name")                                                 ;; 4 bytes
  (data (i32.const 32)  "{\"success\":true,\"data\":{\"message\":\"Hello, ")   ;; 42 bytes; "Hello" at 35
  (data (i32.const 80)  "!\"}}")                                                ;; 4 bytes
  (data (i32.const 96)  "{\"success\":false,\"error\":\"pass a \\\"name\\\" parameter\"}")  ;; 53 bytes
  ;; The plugin's name, version (`plugvisor status` shows it) and description, as `meta` answers
  ;; them: edit the text freely, `meta` counts its length up to the \00.
  (data (i32.const 160) "{\"name\":\"greeter\",\"version\":\"1.0.0\",\"description\":\"Greets parameters.name\"}\00")

  (func $allocate (export "allocate") (param $size i32) (result i32)
    (local $buffer i32) (local $end i32) (local $have i32)
    (local.set $buffer (global.get $arena_next))
    ;; 8-byte aligned, and at least one byte so that every buffer has its own address.
    (local.set $end (i32.and (i32.add (i32.add (local.get $buffer) (local.get $size)) (i32.const 8)) (i32.const -8)))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq (memory.grow (i32.div_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535))
                                            (i32.const 65536)))
                    (i32.const -1))
          (then unreachable))))  ;; out of memory (the manifest's `memory` cap): the call traps
    (global.set $arena_next (local.get $end))
    (global.set $arena_live (i32.add (global.get $arena_live) (i32.const 1)))
    (local.get $buffer))

  (func (export "deallocate") (param $buffer i32) (param $size i32)
    (if (i32.lt_u (local.get $buffer) (global.get $arena_start)) (then (return)))  ;; a constant answer
    (global.set $arena_live (i32.sub (global.get $arena_live) (i32.const 1)))
    (if (i32.eqz (global.get $arena_live)) (then (global.set $arena_next (global.get $arena_start)))))

  (func (export "meta") (result i64)
    (local $end i32)
    (local.set $end (i32.const 160))
    (loop $count
      (if (i32.load8_u (local.get $end))
        (then (local.set $end (i32.add (local.get $end) (i32.const 1))) (br $count))))
    ;; A constant below the arena, which deallocate leaves alone.
    (i64.or (i64.shl (i64.const 160) (i64.const 32)) (i64.extend_i32_u (i32.sub (local.get $end) (i32.const 160)))))

  ;; $at is at an opening quote; returns the position just past the closing one.
  (func $string_end (param $at i32) (param $end i32) (result i32)
    (loop $scan
      (local.set $at (i32.add (local.get $at) (i32.const 1)))
      (if (i32.ge_u (local.get $at) (local.get $end)) (then (return (local.get $end))))
      (if (i32.eq (i32.load8_u (local.get $at)) (i32.const 92))  ;; a backslash escapes the next byte
        (then (local.set $at (i32.add (local.get $at) (i32.const 1))) (br $scan)))
      (br_if $scan (i32.ne (i32.load8_u (local.get $at)) (i32.const 34))))
    (i32.add (local.get $at) (i32.const 1)))

  (func $is_space (param $byte i32) (result i32)
    (i32.or (i32.or (i32.eq (local.get $byte) (i32.const 32)) (i32.eq (local.get $byte) (i32.const 9)))
            (i32.or (i32.eq (local.get $byte) (i32.const 10)) (i32.eq (local.get $byte) (i32.const 13)))))

  ;; Whether the $length bytes at $a and at $b are the same.
  (func $same (param $a i32) (param $b i32) (param $length i32) (result i32)
    (block $differ
      (loop $compare
        (if (i32.eqz (local.get $length)) (then (return (i32.const 1))))
        (br_if $differ (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (local.set $length (i32.sub (local.get $length) (i32.const 1)))
        (br $compare)))
    (i32.const 0))

  ;; In the JSON object starting at $at, where the value of the member named by the $length bytes
  ;; at $key starts; -1 when there is none. Members of nested objects are not matched.
  (func $member (param $at i32) (param $end i32) (param $key i32) (param $length i32) (result i32)
    (local $byte i32) (local $depth i32) (local $key_start i32) (local $after i32)
    (loop $scan
      (if (i32.ge_u (local.get $at) (local.get $end)) (then (return (i32.const -1))))
      (local.set $byte (i32.load8_u (local.get $at)))
      (if (i32.eq (local.get $byte) (i32.const 34))  ;; a string: a key when a ':' follows
        (then
          (local.set $key_start (i32.add (local.get $at) (i32.const 1)))
          (local.set $at (call $string_end (local.get $at) (local.get $end)))
          (local.set $after (local.get $at))
          (block $spaced
            (loop $skip
              (br_if $spaced (i32.ge_u (local.get $after) (local.get $end)))
              (br_if $spaced (i32.eqz (call $is_space (i32.load8_u (local.get $after)))))
              (local.set $after (i32.add (local.get $after) (i32.const 1)))
              (br $skip)))
          (if (i32.and
                (i32.and (i32.eq (local.get $depth) (i32.const 1))
                         (i32.lt_u (local.get $after) (local.get $end)))
                (i32.and (i32.eq (i32.load8_u (local.get $after)) (i32.const 58))
                         (i32.eq (i32.sub (i32.sub (local.get $at) (local.get $key_start)) (i32.const 1)) (local.get $length))))
            (then
              (if (call $same (local.get $key_start) (local.get $key) (local.get $length))
                (then
                  ;; The value starts after the ':' and any spaces.
                  (local.set $at (i32.add (local.get $after) (i32.const 1)))
                  (block $found
                    (loop $skip
                      (br_if $found (i32.ge_u (local.get $at) (local.get $end)))
                      (br_if $found (i32.eqz (call $is_space (i32.load8_u (local.get $at)))))
                      (local.set $at (i32.add (local.get $at) (i32.const 1)))
                      (br $skip)))
                  (return (local.get $at))))))
          (br $scan)))
      (if (i32.or (i32.eq (local.get $byte) (i32.const 123)) (i32.eq (local.get $byte) (i32.const 91)))  ;; { [
        (then (local.set $depth (i32.add (local.get $depth) (i32.const 1)))))
      (if (i32.or (i32.eq (local.get $byte) (i32.const 125)) (i32.eq (local.get $byte) (i32.const 93)))  ;; } ]
        (then
          (local.set $depth (i32.sub (local.get $depth) (i32.const 1)))
          (if (i32.le_s (local.get $depth) (i32.const 0)) (then (return (i32.const -1))))))  ;; the object ended
      (local.set $at (i32.add (local.get $at) (i32.const 1)))
      (br $scan))
    (i32.const -1))

  (func (export "execute") (param $context i32) (param $length i32) (result i64)
    (local $end i32) (local $parameters i32) (local $name i32) (local $name_length i32)
    (local $answer i32) (local $answer_length i32)
    (local.set $end (i32.add (local.get $context) (local.get $length)))
    (local.set $parameters (call $member (local.get $context) (local.get $end) (i32.const 0) (i32.const 10)))
    (if (i32.and (i32.ge_s (local.get $parameters) (i32.const 0))
                 (i32.eq (i32.load8_u (local.get $parameters)) (i32.const 123)))  ;; an object
      (then (local.set $name (call $member (local.get $parameters) (local.get $end) (i32.const 16) (i32.const 4))))
      (else (local.set $name (i32.const -1))))
    (if (i32.ge_s (local.get $name) (i32.const 0))
      (then
        (if (i32.eq (i32.load8_u (local.get $name)) (i32.const 34))
          (then
            ;; The bytes between the quotes.
            (local.set $name_length (i32.sub (i32.sub (call $string_end (local.get $name) (local.get $end)) (local.get $name))
                                             (i32.const 2)))
            (local.set $name (i32.add (local.get $name) (i32.const 1)))))))
    (if (i32.le_s (local.get $name_length) (i32.const 0))
      (then (return (i64.or (i64.shl (i64.const 96) (i64.const 32)) (i64.const 53)))))  ;; the error answer

    (local.set $answer_length (i32.add (local.get $name_length) (i32.const 46)))  ;; 42 + name + 4
    (local.set $answer (call $allocate (local.get $answer_length)))
    (memory.copy (local.get $answer) (i32.const 32) (i32.const 42))
    (memory.copy (i32.add (local.get $answer) (i32.const 42)) (local.get $name) (local.get $name_length))
    (memory.copy (i32.add (i32.add (local.get $answer) (i32.const 42)) (local.get $name_length)) (i32.const 80) (i32.const 4))
    ;; Log "Hello, NAME!" (from the answer: 7 + name + 1 bytes at offset 35).
    (call $log (i32.const 2) (i32.add (local.get $answer) (i32.const 35)) (i32.add (local.get $name_length) (i32.const 8)))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $answer)) (i64.const 32)) (i64.extend_i32_u (local.get $answer_length)))))
