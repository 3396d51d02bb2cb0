;; json-transformer: the seed article's example plugin, in plain WAT.
;; It answers {"success":true,"data":{<every parameter>,"_request_id":<request_id>,"_processed":true}}
;; by scanning the context JSON for its top-level "parameters" and "request_id" members.
(module
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 4096))
  (data (i32.const 0)   "{\"success\":true,\"data\":")           ;; 23 bytes
  (data (i32.const 32)  "\"_request_id\":")                       ;; 14 bytes
  (data (i32.const 48)  ",\"_processed\":true}}")                 ;; 20 bytes
  (data (i32.const 80)  "parameters")                             ;; 10 bytes
  (data (i32.const 96)  "request_id")                             ;; 10 bytes
  (data (i32.const 112) "null")                                   ;; 4 bytes
  (data (i32.const 128) "{\"name\":\"json-transformer\",\"version\":\"1.0.0\",\"description\":\"Transform JSON data with custom rules\",\"author\":\"plugvisor\"}")

  (func $reserve (param $end i32)
    (local $have i32)
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow (i32.div_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535)) (i32.const 65536)))
              (i32.const -1))
          (then unreachable)))))

  (func (export "allocate") (param $size i32) (result i32)
    (call $reserve (i32.add (i32.const 4096) (local.get $size)))
    (global.set $next (i32.add (i32.const 4096) (local.get $size)))
    (i32.const 4096))

  (func (export "deallocate") (param i32 i32))

  (func $is_space (param $c i32) (result i32)
    (i32.or (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 9)))
            (i32.or (i32.eq (local.get $c) (i32.const 10)) (i32.eq (local.get $c) (i32.const 13)))))

  (func $skip_ws (param $p i32) (param $end i32) (result i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (br_if $done (i32.eqz (call $is_space (i32.load8_u (local.get $p)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $next)))
    (local.get $p))

  ;; $p at an opening quote; returns the position after the closing one.
  (func $skip_string (param $p i32) (param $end i32) (result i32)
    (local $c i32)
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $p)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br_if $done (i32.eq (local.get $c) (i32.const 34)))
        (if (i32.eq (local.get $c) (i32.const 92)) (then (local.set $p (i32.add (local.get $p) (i32.const 1)))))
        (br $next)))
    (local.get $p))

  ;; Skips one JSON value (object, array, string or scalar) starting at $p.
  (func $skip_value (param $p i32) (param $end i32) (result i32)
    (local $c i32) (local $depth i32)
    (local.set $p (call $skip_ws (local.get $p) (local.get $end)))
    (if (i32.ge_u (local.get $p) (local.get $end)) (then (return (local.get $p))))
    (local.set $c (i32.load8_u (local.get $p)))
    (if (i32.eq (local.get $c) (i32.const 34)) (then (return (call $skip_string (local.get $p) (local.get $end)))))
    (if (i32.or (i32.eq (local.get $c) (i32.const 123)) (i32.eq (local.get $c) (i32.const 91)))
      (then
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
            (local.set $c (i32.load8_u (local.get $p)))
            (if (i32.eq (local.get $c) (i32.const 34))
              (then (local.set $p (call $skip_string (local.get $p) (local.get $end))) (br $next)))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (if (i32.or (i32.eq (local.get $c) (i32.const 123)) (i32.eq (local.get $c) (i32.const 91)))
              (then (local.set $depth (i32.add (local.get $depth) (i32.const 1)))))
            (if (i32.or (i32.eq (local.get $c) (i32.const 125)) (i32.eq (local.get $c) (i32.const 93)))
              (then
                (local.set $depth (i32.sub (local.get $depth) (i32.const 1)))
                (br_if $done (i32.eqz (local.get $depth)))))
            (br $next)))
        (return (local.get $p))))
    ;; A scalar runs to the next delimiter.
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $p)))
        (br_if $done (i32.or (i32.or (i32.eq (local.get $c) (i32.const 44)) (i32.eq (local.get $c) (i32.const 125)))
                             (i32.or (i32.eq (local.get $c) (i32.const 93)) (call $is_space (local.get $c)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $next)))
    (local.get $p))

  ;; In the object at $p, the position of the value of key [$key, $key+$klen), or -1.
  (func $find_member (param $p i32) (param $end i32) (param $key i32) (param $klen i32) (result i32)
    (local $kstart i32) (local $kend i32)
    (local.set $p (call $skip_ws (local.get $p) (local.get $end)))
    (if (i32.or (i32.ge_u (local.get $p) (local.get $end)) (i32.ne (i32.load8_u (local.get $p)) (i32.const 123)))
      (then (return (i32.const -1))))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (loop $member
      (local.set $p (call $skip_ws (local.get $p) (local.get $end)))
      (if (i32.ge_u (local.get $p) (local.get $end)) (then (return (i32.const -1))))
      (if (i32.ne (i32.load8_u (local.get $p)) (i32.const 34)) (then (return (i32.const -1))))
      (local.set $kstart (i32.add (local.get $p) (i32.const 1)))
      (local.set $p (call $skip_string (local.get $p) (local.get $end)))
      (local.set $kend (i32.sub (local.get $p) (i32.const 1)))
      (local.set $p (call $skip_ws (local.get $p) (local.get $end)))
      (local.set $p (i32.add (local.get $p) (i32.const 1))) ;; the ':'
      (local.set $p (call $skip_ws (local.get $p) (local.get $end)))
      (if (i32.and (i32.eq (i32.sub (local.get $kend) (local.get $kstart)) (local.get $klen))
                   (call $equal (local.get $kstart) (local.get $key) (local.get $klen)))
        (then (return (local.get $p))))
      (local.set $p (call $skip_ws (call $skip_value (local.get $p) (local.get $end)) (local.get $end)))
      (if (i32.ge_u (local.get $p) (local.get $end)) (then (return (i32.const -1))))
      (if (i32.eq (i32.load8_u (local.get $p)) (i32.const 44))
        (then (local.set $p (i32.add (local.get $p) (i32.const 1))) (br $member))))
    (i32.const -1))

  (func $equal (param $a i32) (param $b i32) (param $n i32) (result i32)
    (block $differ
      (loop $next
        (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
        (br_if $differ (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  (func $emit (param $out i32) (param $from i32) (param $n i32) (result i32)
    (memory.copy (local.get $out) (local.get $from) (local.get $n))
    (i32.add (local.get $out) (local.get $n)))

  (func (export "execute") (param $ptr i32) (param $len i32) (result i64)
    (local $end i32) (local $params i32) (local $params_end i32) (local $rid i32) (local $rid_end i32)
    (local $out i32) (local $start i32) (local $body_end i32)
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (local.set $params (call $find_member (local.get $ptr) (local.get $end) (i32.const 80) (i32.const 10)))
    (local.set $rid (call $find_member (local.get $ptr) (local.get $end) (i32.const 96) (i32.const 10)))
    (if (i32.eq (local.get $rid) (i32.const -1))
      (then (local.set $rid (i32.const 112)) (local.set $rid_end (i32.const 116)))
      (else (local.set $rid_end (call $skip_value (local.get $rid) (local.get $end)))))
    (local.set $start (global.get $next))
    (call $reserve (i32.add (local.get $start) (i32.add (local.get $len) (i32.const 128))))
    (local.set $out (call $emit (local.get $start) (i32.const 0) (i32.const 23)))
    ;; The parameters object without its closing brace, or "{" when there is none.
    (if (i32.and (i32.ne (local.get $params) (i32.const -1))
                 (i32.eq (i32.load8_u (local.get $params)) (i32.const 123)))
      (then
        (local.set $params_end (call $skip_value (local.get $params) (local.get $end)))
        (local.set $body_end (i32.sub (local.get $params_end) (i32.const 1)))
        (local.set $out (call $emit (local.get $out) (local.get $params) (i32.sub (local.get $body_end) (local.get $params))))
        ;; A comma unless the object was empty.
        (if (i32.ne (i32.load8_u (call $skip_ws (i32.add (local.get $params) (i32.const 1)) (local.get $end))) (i32.const 125))
          (then (i32.store8 (local.get $out) (i32.const 44)) (local.set $out (i32.add (local.get $out) (i32.const 1))))))
      (else (i32.store8 (local.get $out) (i32.const 123)) (local.set $out (i32.add (local.get $out) (i32.const 1)))))
    (local.set $out (call $emit (local.get $out) (i32.const 32) (i32.const 14)))
    (local.set $out (call $emit (local.get $out) (local.get $rid) (i32.sub (local.get $rid_end) (local.get $rid))))
    (local.set $out (call $emit (local.get $out) (i32.const 48) (i32.const 20)))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $start)) (i64.const 32))
            (i64.extend_i32_u (i32.sub (local.get $out) (local.get $start)))))

  (func (export "meta") (result i64)
    (i64.or (i64.shl (i64.const 128) (i64.const 32)) (i64.const 120))))
