import Crypto
import Foundation
import PlugvisorProtocol

/// The page at `/`: the status table rendered on the server (it reads without JavaScript),
/// and a script that polls `/v1/plugins` and redraws it in place, with a calls-per-second
/// sparkline and a p50/p99 chart per plugin drawn from the polls it has seen. Versions, errors
/// and reload results are what guests and workers wrote: every such string goes through
/// `html(_:)` here and through `textContent` in the script, never into markup; and the page's
/// Content-Security-Policy lets only this script run, so markup that got through anyway could
/// not run either.
enum Dashboard {
    static let columns = [
        "plugin", "state", "gen", "version", "workers", "calls", "calls/s", "errors", "p50", "p99",
        "restarts", "circuit", "queue", "last reload", "last error",
    ]

    static func page(_ status: StatusReport, adminEnabled: Bool) -> String {
        let rows = status.plugins.map(row).joined(separator: "\n")
        let header = columns.map { "<th>\($0)</th>" }.joined()
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>plugvisor</title>
            <meta name="viewport" content="width=device-width">
            <style>\(style)</style></head>
            <body data-admin="\(adminEnabled ? "1" : "0")">
            <h1>plugvisor</h1>
            <table id="plugins"><thead><tr>\(header)<th>trend (last minute)</th><th class="admin"></th></tr></thead>
            <tbody>
            \(rows)
            </tbody></table>
            <p id="updated">as of \(Date.now.formatted(.iso8601)); reload the page to update \
            (with JavaScript it updates itself)</p>
            <script>\(script)</script>
            </body></html>
            """
    }

    static func row(_ plugin: PluginStatus) -> String {
        let cells: [String] = [
            plugin.name, plugin.state.rawValue, "\(plugin.generation)", plugin.version ?? "-",
            workers(plugin), "\(plugin.calls)", "-", errors(plugin),
            plugin.p50Micros.map { "\($0)µs" } ?? "-", plugin.p99Micros.map { "\($0)µs" } ?? "-",
            "\(plugin.restarts)", plugin.circuit?.rawValue ?? "-", "\(plugin.queued)",
            [plugin.lastReloadAt, plugin.lastReload].compactMap { $0 }.joined(separator: " "),
            plugin.lastError ?? "",
        ]
        return "<tr data-plugin=\"\(html(plugin.name))\">"
            + cells.map { "<td>\(html($0))</td>" }.joined()
            + "<td class=\"trend\"></td><td class=\"admin\"></td></tr>"
    }

    /// The same text the script writes into the workers cell.
    static func workers(_ plugin: PluginStatus) -> String {
        let text = plugin.workers.map { worker in
            "\(worker.pid) \(worker.state.rawValue) \(Int(worker.uptimeSeconds))s"
                + (worker.rssBytes.map { " \($0 / 1024)KiB" } ?? "")
        }.joined(separator: ", ")
        return text.isEmpty ? "-" : text
    }

    static func errors(_ plugin: PluginStatus) -> String {
        plugin.errorsByCode.isEmpty
            ? "\(plugin.errors)"
            : "\(plugin.errors) ("
                + plugin.errorsByCode.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
                .joined(separator: ", ") + ")"
    }

    /// `text` safe as element content and as a quoted attribute value.
    static func html(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }

    /// Only the page's own script and style run: an injected `<script>`, inline handler or
    /// remote resource is refused by the browser. No framing (the admin buttons must not be
    /// clickjacked); the polls and admin requests go to this origin only.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src '\(hash(script))'; style-src '\(hash(style))'; "
        + "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

    private static func hash(_ text: String) -> String {
        "sha256-" + Data(SHA256.hash(data: Data(text.utf8))).base64EncodedString()
    }

    static let style = """
        body{font:14px system-ui,sans-serif;margin:1em}table{border-collapse:collapse}
        td,th{border-bottom:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
        body[data-admin="0"] .admin{display:none}
        td.state-ready{color:#080}td.state-failed{color:#c00;font-weight:bold}td.state-stopped{color:#777}
        td.state-reloading,td.state-starting{color:#a60}
        td.trend,td.admin{white-space:nowrap}svg{display:inline-block;margin-right:.5em;background:#f6f6f6}polyline{fill:none;stroke-width:1.5}
        .rate{stroke:#36c}.p50{stroke:#080}.p99{stroke:#c60}
        #updated.stale{color:#c00}
        """

    /// Redraws each row from `/v1/plugins` once a second; text goes in with `textContent`
    /// only, charts are built from numbers. The admin token is asked once and kept in
    /// sessionStorage: sent as a header, never in a URL or cookie.
    static let script = """
        (function () {
          "use strict";
          var admin = document.body.dataset.admin === "1";
          var body = document.querySelector("#plugins tbody");
          var updated = document.getElementById("updated");
          var SAMPLES = 60, WIDTH = 120, HEIGHT = 24, SVG = "http://www.w3.org/2000/svg";
          var history = {};
          function micros(v) { return v == null ? "-" : v + "\\u00b5s"; }
          function workers(p) {
            var text = p.workers.map(function (w) {
              return w.pid + " " + w.state + " " + Math.floor(w.uptimeSeconds) + "s" +
                (w.rssBytes != null ? " " + Math.floor(w.rssBytes / 1024) + "KiB" : "");
            }).join(", ");
            return text || "-";
          }
          function errors(p) {
            var codes = Object.keys(p.errorsByCode || {}).sort().map(function (k) {
              return k + ": " + p.errorsByCode[k];
            }).join(", ");
            return codes ? p.errors + " (" + codes + ")" : String(p.errors);
          }
          function cells(p, rate) {
            return [p.name, p.state, String(p.generation), p.version || "-", workers(p), String(p.calls),
              rate, errors(p), micros(p.p50Micros), micros(p.p99Micros), String(p.restarts),
              p.circuit || "-", String(p.queued), [p.lastReloadAt, p.lastReload].filter(Boolean).join(" "),
              p.lastError || ""];
          }
          function push(list, value) { list.push(value); if (list.length > SAMPLES) list.shift(); }
          function chart(kind, series, title) {
            var svg = document.createElementNS(SVG, "svg");
            svg.setAttribute("class", kind);
            svg.setAttribute("width", WIDTH);
            svg.setAttribute("height", HEIGHT);
            svg.dataset.points = series[0].values.length;
            var max = 1;
            series.forEach(function (s) { s.values.forEach(function (v) { if (v > max) max = v; }); });
            series.forEach(function (s) {
              var line = document.createElementNS(SVG, "polyline");
              line.setAttribute("class", s.name);
              line.setAttribute("points", s.values.map(function (v, i) {
                var x = WIDTH - (s.values.length - 1 - i) * WIDTH / (SAMPLES - 1);
                return x.toFixed(1) + "," + (HEIGHT - 1 - v / max * (HEIGHT - 2)).toFixed(1);
              }).join(" "));
              svg.appendChild(line);
            });
            var tip = document.createElementNS(SVG, "title");
            tip.textContent = title(max);
            svg.appendChild(tip);
            return svg;
          }
          function trend(td, h) {
            td.replaceChildren(
              chart("spark", [{name: "rate", values: h.rates}], function (max) {
                return "calls/s, last " + h.rates.length + " s (top " + max.toFixed(1) + ")";
              }),
              chart("latency", [{name: "p50", values: h.p50}, {name: "p99", values: h.p99}], function (max) {
                return "p50 (green) and p99 (orange), top " + max + "\\u00b5s";
              }));
          }
          function token() {
            var t = sessionStorage.getItem("plugvisor-token");
            if (!t) { t = prompt("Admin token"); if (t) sessionStorage.setItem("plugvisor-token", t); }
            return t;
          }
          function act(name, op) {
            var t = token();
            if (!t) return;
            fetch("/v1/plugins/" + encodeURIComponent(name) + "/" + op,
              {method: "POST", headers: {"Authorization": "Bearer " + t}})
              .then(function (r) {
                if (r.status === 401) sessionStorage.removeItem("plugvisor-token");
                if (!r.ok) return r.json().then(function (e) {
                  updated.textContent = op + " " + name + ": " + ((e.error && e.error.message) || r.status);
                });
              })
              .catch(function () {})
              .then(poll);
          }
          function buttons(td, name) {
            if (!admin || td.childNodes.length) return;
            ["kill", "restart", "reload"].forEach(function (op) {
              var b = document.createElement("button");
              b.textContent = op;
              b.className = "op-" + op;
              b.onclick = function () { act(name, op); };
              td.appendChild(b);
            });
          }
          function draw(report) {
            var now = Date.now(), seen = {};
            report.plugins.forEach(function (p) {
              seen[p.name] = true;
              var h = history[p.name];
              if (!h) h = history[p.name] = {calls: p.calls, at: now, rates: [], p50: [], p99: []};
              var rate = "-";
              if (now > h.at) {
                var perSecond = Math.max(0, (p.calls - h.calls) * 1000 / (now - h.at));
                rate = perSecond.toFixed(1);
                push(h.rates, perSecond);
              }
              push(h.p50, p.p50Micros || 0);
              push(h.p99, p.p99Micros || 0);
              h.calls = p.calls;
              h.at = now;
              var tr = Array.prototype.find.call(body.rows, function (r) { return r.dataset.plugin === p.name; });
              if (!tr) { tr = body.insertRow(); tr.dataset.plugin = p.name; }
              var values = cells(p, rate);
              while (tr.cells.length < values.length + 2) tr.insertCell();
              values.forEach(function (v, i) { if (tr.cells[i].textContent !== v) tr.cells[i].textContent = v; });
              tr.cells[1].className = "state-" + p.state;
              tr.cells[values.length].className = "trend";
              trend(tr.cells[values.length], h);
              var td = tr.cells[values.length + 1];
              td.className = "admin";
              buttons(td, p.name);
            });
            Array.prototype.slice.call(body.rows).forEach(function (r) {
              if (!seen[r.dataset.plugin]) { r.remove(); delete history[r.dataset.plugin]; }
            });
            updated.className = "";
            updated.textContent = "updated " + new Date(now).toLocaleTimeString();
          }
          function poll() {
            return fetch("/v1/plugins").then(function (r) {
              if (!r.ok) throw new Error("HTTP " + r.status);
              return r.json();
            }).then(draw).catch(function (e) {
              updated.className = "stale";
              updated.textContent = "not updating: " + e.message;
            });
          }
          Array.prototype.forEach.call(body.rows, function (r) {
            r.cells[1].className = "state-" + r.cells[1].textContent;
            buttons(r.cells[r.cells.length - 1], r.dataset.plugin);
          });
          poll();
          setInterval(poll, 1000);
        })();
        """
}
