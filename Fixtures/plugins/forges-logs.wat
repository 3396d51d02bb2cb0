;; Hostile but within the ABI: a guest that tries to forge a log line (a newline, then text
;; shaped like a supervisor line) and to drive the terminal (OSC, CSI, a carriage return) through
;; its log line and its meta version. The supervisor must print both as data.
(module
  (import "plugvisor" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hello\0a2000-01-01T00:00:00+0000 critical plugvisor.supervisor: plugin=good [Plugvisor] forged line\1b]0;owned\07\1b[2J\0d") ;; 112 bytes
  (data (i32.const 256) "{\"name\":\"forges-logs\",\"version\":\"1.0\\u001b]0;owned\\u0007\\u001b[31m\\nforged\"}") ;; 76 bytes
  (data (i32.const 512) "{\"success\":true,\"data\":\"logged\"}") ;; 32 bytes
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "execute") (param i32 i32) (result i64)
    (call $log (i32.const 2) (i32.const 0) (i32.const 112))
    (i64.or (i64.shl (i64.const 512) (i64.const 32)) (i64.const 32)))
  (func (export "meta") (result i64) (i64.or (i64.shl (i64.const 256) (i64.const 32)) (i64.const 76))))
