import PlugvisorProtocol

/// The page at `/`: the status table rendered on the server (it reads without JavaScript),
/// and a script that polls `/v1/plugins` and redraws it in place. Versions, errors and
/// reload results are what guests and workers wrote: every such string goes through
/// `html(_:)` here and through `textContent` in the script, never into markup.
enum Dashboard {
    static func page(_ status: StatusReport, adminEnabled: Bool) -> String {
        let rows = status.plugins.map(row).joined(separator: "\n")
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>plugvisor</title>
            <meta name="viewport" content="width=device-width">
            <style>\(style)</style></head>
            <body data-admin="\(adminEnabled ? "1" : "0")">
            <h1>plugvisor</h1>
            <table id="plugins"><thead><tr><th>plugin</th><th>state</th><th>gen</th><th>version</th>\
            <th>workers</th><th>calls</th><th>calls/s</th><th>errors</th><th>p50</th><th>p99</th>\
            <th>restarts</th><th>circuit</th><th>queue</th><th>last reload</th><th>last error</th>\
            <th class="admin"></th></tr></thead>
            <tbody>
            \(rows)
            </tbody></table>
            <p id="updated"></p>
            <script>\(script)</script>
            </body></html>
            """
    }

    static func row(_ plugin: PluginStatus) -> String {
        let workers = plugin.workers.map { worker in
            "\(worker.pid) \(worker.state.rawValue) \(Int(worker.uptimeSeconds))s"
                + (worker.rssBytes.map { " \($0 / 1024)KiB" } ?? "")
        }.joined(separator: ", ")
        let errors =
            plugin.errorsByCode.isEmpty
            ? "\(plugin.errors)"
            : "\(plugin.errors) ("
                + plugin.errorsByCode.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
                .joined(separator: ", ") + ")"
        let cells: [String] = [
            plugin.name, plugin.state.rawValue, "\(plugin.generation)", plugin.version ?? "-",
            workers.isEmpty ? "-" : workers, "\(plugin.calls)", "-", errors,
            plugin.p50Micros.map { "\($0)µs" } ?? "-", plugin.p99Micros.map { "\($0)µs" } ?? "-",
            "\(plugin.restarts)", plugin.circuit?.rawValue ?? "-", "\(plugin.queued)",
            [plugin.lastReloadAt, plugin.lastReload].compactMap { $0 }.joined(separator: " "),
            plugin.lastError ?? "",
        ]
        return "<tr data-plugin=\"\(html(plugin.name))\">"
            + cells.map { "<td>\(html($0))</td>" }.joined() + "<td class=\"admin\"></td></tr>"
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

    static let style = """
        body{font:14px system-ui,sans-serif;margin:1em}table{border-collapse:collapse}
        td,th{border-bottom:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
        body[data-admin="0"] .admin{display:none}
        """

    /// Redraws each row from `/v1/plugins` once a second; text goes in with `textContent` only.
    /// The admin token is asked once and kept in sessionStorage: sent as a header, never in a
    /// URL or cookie.
    static let script = """
        (function(){
        var admin=document.body.dataset.admin==="1";var last={};var lastAt=0;
        function us(v){return v==null?"-":v+"\\u00b5s";}
        function cells(p,rate){
        var w=p.workers.map(function(x){return x.pid+" "+x.state+" "+Math.floor(x.uptimeSeconds)+"s"+
        (x.rssBytes!=null?" "+Math.floor(x.rssBytes/1024)+"KiB":"");}).join(", ");
        var codes=Object.keys(p.errorsByCode||{}).sort().map(function(k){return k+": "+p.errorsByCode[k];}).join(", ");
        return [p.name,p.state,String(p.generation),p.version||"-",w||"-",String(p.calls),rate,
        codes?p.errors+" ("+codes+")":String(p.errors),us(p.p50Micros),us(p.p99Micros),String(p.restarts),
        p.circuit||"-",String(p.queued),[p.lastReloadAt,p.lastReload].filter(Boolean).join(" "),p.lastError||""];}
        function token(){var t=sessionStorage.getItem("plugvisor-token");
        if(!t){t=prompt("Admin token");if(t)sessionStorage.setItem("plugvisor-token",t);}return t;}
        function act(name,op){var t=token();if(!t)return;
        fetch("/v1/plugins/"+encodeURIComponent(name)+"/"+op,{method:"POST",headers:{"Authorization":"Bearer "+t}})
        .then(function(r){if(r.status===401)sessionStorage.removeItem("plugvisor-token");poll();});}
        function buttons(td,name){if(!admin||td.childNodes.length)return;
        ["kill","restart","reload"].forEach(function(op){var b=document.createElement("button");
        b.textContent=op;b.className="op-"+op;b.onclick=function(){act(name,op);};td.appendChild(b);});}
        function draw(report){var now=Date.now();var body=document.querySelector("#plugins tbody");
        var seen={};report.plugins.forEach(function(p){seen[p.name]=1;
        var rate=lastAt&&last[p.name]!=null?((p.calls-last[p.name])*1000/(now-lastAt)).toFixed(1):"-";
        last[p.name]=p.calls;
        var tr=Array.prototype.find.call(body.rows,function(r){return r.dataset.plugin===p.name;});
        if(!tr){tr=body.insertRow();tr.dataset.plugin=p.name;}
        var values=cells(p,rate);while(tr.cells.length<values.length+1)tr.insertCell();
        values.forEach(function(v,i){if(tr.cells[i].textContent!==v)tr.cells[i].textContent=v;});
        var td=tr.cells[values.length];td.className="admin";buttons(td,p.name);});
        Array.prototype.slice.call(body.rows).forEach(function(r){if(!seen[r.dataset.plugin])r.remove();});
        lastAt=now;document.getElementById("updated").textContent="updated "+new Date(now).toLocaleTimeString();}
        function poll(){fetch("/v1/plugins").then(function(r){return r.json();}).then(draw).catch(function(){});}
        Array.prototype.forEach.call(document.querySelectorAll("#plugins tbody tr"),function(r){
        buttons(r.cells[r.cells.length-1],r.dataset.plugin);});
        poll();setInterval(poll,1000);})();
        """
}
