import ArgumentParser
import Foundation
import PlugvisorProtocol

struct Call: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call a plugin and print its JSON result.",
        discussion: """
            Sends the plugin context {"request_id", "headers", "parameters"} and prints the plugin's \
            result on stdout. Exit status: 0 when the result has "success": true, 1 when the plugin \
            answered "success": false, 2 for a supervisor-side error (not running, unknown plugin, \
            timeout, crash, ...), printed as one line of JSON on stderr.

            An abi: extism plugin is called by function instead: --function NAME with --input TEXT \
            (or --input - for stdin, bytes as they are); its output bytes are printed as they are. \
            Exit status 1 then means the plugin failed (error_set or a non-zero return code), with \
            {"error": {"code": "plugin_failed", "message": ...}} on stderr.
            """)

    @Argument(help: "The plugin's name in the manifest.")
    var name: String

    @Option(name: .customShort("p"), help: ArgumentHelp("A parameter, KEY=VALUE (repeatable).", valueName: "KEY=VALUE"))
    var parameters: [String] = []

    @Option(name: .customShort("H"), help: ArgumentHelp("A header, KEY=VALUE (repeatable).", valueName: "KEY=VALUE"))
    var headers: [String] = []

    @Option(name: .long, help: "The request id (default: a new UUID).")
    var requestID: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Read the context (or part of it) as a JSON object from FILE, or from stdin with '-'; -p, -H and --request-id add to it.",
            valueName: "FILE|-"))
    var json: String?

    @Option(
        name: .long, help: ArgumentHelp("For an abi: extism plugin: the exported function to call.", valueName: "NAME"))
    var function: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "With --function: the input bytes, as TEXT, or read from stdin with '-' (default: none).",
            valueName: "TEXT|-"))
    var input: String?

    @OptionGroup var control: ControlOptions

    func validate() throws {
        for pair in parameters + headers where !pair.contains("=") {
            throw ValidationError("'\(pair)' is not KEY=VALUE")
        }
        if function == nil, input != nil { throw ValidationError("--input goes with --function (an abi: extism call)") }
        if function != nil, json != nil || !parameters.isEmpty || !headers.isEmpty || requestID != nil {
            throw ValidationError(
                "--function calls an abi: extism plugin with raw --input: -p, -H, --json and --request-id are for a context"
            )
        }
    }

    func run() throws {
        if let function {
            let bytes = input == "-" ? Array(FileHandle.standardInput.readDataToEndOfFile()) : Array((input ?? "").utf8)
            return try callFunction(function, input: bytes)
        }
        let result = send(try withUsage(of: Self.self) { try buildContext() })
        Output.stdout(Output.json(result))
        if result["success"]?.boolValue != true { throw ExitCode(1) }
    }

    /// Calls an Extism plugin's `function` and writes its output bytes, exactly, to stdout.
    private func callFunction(_ function: String, input: [UInt8]) throws {
        switch ExtismCall.output(of: send(ExtismCall.context(function: function, input: input)), plugin: name) {
        case let .success(output):
            FileHandle.standardOutput.write(Data(output))
        case let .failure(error) where error.code == .pluginFailed:
            Output.stderr(JSONCoding.compact(["error": error]))
            throw ExitCode(1)
        case let .failure(error):
            Output.fail(error)
        }
    }

    /// The plugin's result for `context`; a supervisor-side error ends the command (exit 2).
    private func send(_ context: JSONValue) -> JSONValue {
        switch ControlClient(path: control.path).send(ControlRequest(op: .call, plugin: name, context: context)) {
        case let .failure(error):
            Output.fail(error)
        case let .success(response):
            if let error = response.error { Output.fail(error) }
            guard let result = response.result else {
                Output.fail(PluginError(.internalError, plugin: name, "the supervisor sent no result"))
            }
            return result
        }
    }

    /// The context to send, by the rules the gateway follows too (`PluginContext`): header names
    /// in lower case and repeated ones joined, a parameter given twice refused, the same request
    /// ids allowed.
    func buildContext() throws -> JSONValue {
        var context: [String: JSONValue] = [:]
        var source = "--json"
        if let json {
            let data: Data
            do {
                data =
                    json == "-"
                    ? FileHandle.standardInput.readDataToEndOfFile()
                    : try Data(contentsOf: URL(fileURLWithPath: json))
            } catch {
                throw ValidationError("cannot read \(json): \(error.localizedDescription)")
            }
            source = json == "-" ? "stdin" : json
            let value: JSONValue
            do { value = try JSONValue(parsing: Array(data)) } catch {
                throw ValidationError("\(source) is not valid JSON: \(error)")
            }
            guard case let .object(object) = value else { throw ValidationError("\(source) is not a JSON object") }
            context = object
        }
        let givenParameters = (context["parameters"]?.objectValue ?? [:]).sorted { $0.key < $1.key }
            .map { (name: $0.key, value: $0.value) }
        switch PluginContext.parameters(
            from: givenParameters + parameters.map(split).map { (name: $0.name, value: JSONValue.string($0.value)) })
        {
        case let .success(values): context["parameters"] = .object(values)
        case let .failure(error): throw ValidationError(error.message)
        }
        var givenHeaders: [(name: String, value: String)] = []
        for (name, value) in (context["headers"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let value = value.stringValue else {
                throw ValidationError("header \(name.debugDescription) in \(source) must be a string")
            }
            givenHeaders.append((name, value))
        }
        context["headers"] = .object(
            PluginContext.headers(from: givenHeaders + headers.map(split)).mapValues { .string($0) })
        if let requestID {
            guard PluginContext.isValidRequestID(requestID) else {
                throw ValidationError("--request-id must be \(PluginContext.requestIDRule)")
            }
            context["request_id"] = .string(requestID)
        } else if let given = context["request_id"] {
            guard let id = given.stringValue, PluginContext.isValidRequestID(id) else {
                throw ValidationError("\"request_id\" in \(source) must be \(PluginContext.requestIDRule)")
            }
        } else {
            context["request_id"] = .string(PluginContext().requestID)
        }
        return .object(context)
    }

    private func split(_ pair: String) -> (name: String, value: String) {
        let index = pair.firstIndex(of: "=")!
        return (String(pair[..<index]), String(pair[pair.index(after: index)...]))
    }
}
