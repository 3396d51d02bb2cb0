import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Plugvisor
import PlugvisorPosix
import PlugvisorProtocol
import Prometheus

/// The HTTP gateway: plugins called over HTTP, status, admin operations, health and metrics.
///
///     GET  /                              the dashboard (`Dashboard`): the status table, self-updating
///     POST /v1/plugins/{name}/execute     the plugin's result (200) or a typed error
///     GET  /v1/plugins                    what `plugvisor status --json` shows
///     GET  /v1/plugins/{name}
///     POST /v1/plugins/{name}/kill        admin: `Authorization: Bearer <token>` when a token is set
///     POST /v1/plugins/{name}/restart     admin
///     POST /v1/plugins/{name}/reload      admin
///     POST /v1/reload                     admin: re-read the manifest
///     GET  /healthz
///     GET  /metrics                       Prometheus text format
///
/// Errors have the CLI's body, `{"error": {"code", "plugin"?, "message"}}`, with the status
/// `status(for:)` gives their code.
public struct Gateway: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// Admin operations need `Authorization: Bearer <token>` when set.
        public var adminToken: String?
        /// Larger request bodies get 413.
        public var maxBodyBytes: Int
        /// Plugin calls and admin operations under way at once; more get 429 at once. They run
        /// on the supervisor's blocking pool, which bounds the threads; this bounds the bodies
        /// held and the work waiting for a thread.
        public var maxInFlight: Int
        /// Open connections at once. Past it a new one takes the place of the connection that
        /// has waited longest for a request head; when every connection has a request under way,
        /// new ones wait in the listen backlog. Each costs a descriptor, so this keeps HTTP
        /// clients from taking the ones workers need.
        public var maxConnections: Int
        /// A connection idle this long is closed.
        public var idleTimeout: Duration
        /// A new connection whose request head has not fully arrived by then is closed
        /// (slow clients, slowloris).
        public var requestHeadTimeout: Duration
        /// What `/metrics` serves; without it `/metrics` is 404.
        public var metrics: PrometheusCollectorRegistry?

        public init(
            host: String = "127.0.0.1", port: Int = 8080, adminToken: String? = nil, maxBodyBytes: Int = 1 << 20,
            maxInFlight: Int = 512, maxConnections: Int = 256, idleTimeout: Duration = .seconds(60),
            requestHeadTimeout: Duration = .seconds(10), metrics: PrometheusCollectorRegistry? = nil
        ) {
            self.host = host
            self.port = port
            self.adminToken = adminToken
            self.maxBodyBytes = maxBodyBytes
            self.maxInFlight = maxInFlight
            self.maxConnections = maxConnections
            self.idleTimeout = idleTimeout
            self.requestHeadTimeout = requestHeadTimeout
            self.metrics = metrics
        }
    }

    public let supervisor: Supervisor
    public let configuration: Configuration
    private let logger: Logger
    private let adminTokenDigest: [UInt8]?
    private let inFlight: InFlightLimit

    public init(supervisor: Supervisor, configuration: Configuration, logger: Logger = Logger(label: "plugvisor.http"))
    {
        self.supervisor = supervisor
        self.configuration = configuration
        self.logger = logger
        adminTokenDigest = configuration.adminToken.map { Array(SHA256.hash(data: Array($0.utf8))) }
        inFlight = InFlightLimit(configuration.maxInFlight)
    }

    /// A Hummingbird application serving the gateway: run it in a `ServiceGroup` (it is a
    /// `Service`), or with `runService()`.
    /// - Parameter onListening: called with the bound address once the server accepts
    ///   connections (useful with port 0).
    public func application(
        onListening: @escaping @Sendable (String) async -> Void = { _ in }
    )
        -> some ApplicationProtocol
    {
        let connections = ConnectionTable(limit: configuration.maxConnections)
        let headTimeout = TimeAmount(configuration.requestHeadTimeout)
        return Application(
            router: router(),
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [RequestHeadGuard(table: connections, headTimeout: headTimeout)],
                    idleTimeout: TimeAmount(configuration.idleTimeout))),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: "plugvisor",
                availableConnectionsDelegate: EvictingConnectionLimit(table: connections)),
            onServerRunning: { channel in
                let address = channel.localAddress
                let host = address?.ipAddress.map { $0.contains(":") ? "[\($0)]" : $0 } ?? configuration.host
                await onListening("\(host):\(address?.port ?? configuration.port)")
            },
            logger: logger)
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: JSONErrors())
        router.get("/healthz") { _, _ in Self.json(["status": "ok"]) }
        router.get("/") { _, _ in
            let page = Dashboard.page(
                await supervisor.runBlocking { supervisor.status() }, adminEnabled: configuration.adminToken != nil)
            return Response(
                status: .ok,
                headers: [
                    .contentType: "text/html; charset=utf-8", .contentSecurityPolicy: Dashboard.contentSecurityPolicy,
                    .xContentTypeOptions: "nosniff", .cacheControl: "no-store",
                ],
                body: .init(byteBuffer: ByteBuffer(string: page)))
        }
        // Status reads take every plugin's lock and read /proc: on the blocking pool, never on
        // the cooperative pool that serves every connection.
        router.get("/metrics") { _, _ in await metricsResponse() }
        router.get("/v1/plugins") { _, _ in Self.json(await supervisor.runBlocking { supervisor.status() }) }
        router.get("/v1/plugins/{name}") { _, context in
            let name = try context.parameters.require("name")
            switch await supervisor.runBlocking({ supervisor.status(of: name) }) {
            case let .success(plugin): return Self.json(plugin)
            case let .failure(error): return Self.errorResponse(error)
            }
        }
        router.post("/v1/plugins/{name}/execute") { request, context in
            try await execute(request, name: context.parameters.require("name"))
        }
        router.post("/v1/plugins/{name}/functions/{function}") { request, context in
            try await callFunction(
                request, name: context.parameters.require("name"), function: context.parameters.require("function"))
        }
        for operation in [ControlRequest.Operation.kill, .restart, .reload] {
            router.post("/v1/plugins/{name}/\(operation.rawValue)") { request, context in
                try await admin(request, ControlRequest(op: operation, plugin: context.parameters.require("name")))
            }
        }
        router.post("/v1/reload") { request, _ in await admin(request, ControlRequest(op: .reload)) }
        return router
    }

    // MARK: Routes

    private func execute(_ request: Request, name: String) async -> Response {
        let requestID: String
        switch Self.requestID(request.headers[.xRequestID]) {
        case let .success(id): requestID = id
        case let .failure(error): return Self.errorResponse(error)
        }
        let headers = Self.contextHeaders(request.headers)
        // The in-flight slot is taken before the body is read: at most `maxInFlight` bodies are
        // held and decoded at once, on the supervisor's blocking pool, never on the cooperative
        // pool that serves every other connection.
        let answer = await limitingInFlight(plugin: name, refused: { .failure($0) }) {
            () async -> Result<JSONValue, PluginError> in
            let body: ByteBuffer
            switch await Self.collectBody(of: request, limit: configuration.maxBodyBytes) {
            case let .failure(error): return .failure(error)
            case let .success(collected): body = collected
            }
            let parameters: [String: JSONValue]
            switch await supervisor.runBlocking({ Self.parameters(from: body) }) {
            case let .failure(error): return .failure(error)
            case let .success(decoded): parameters = decoded
            }
            let context = PluginContext(requestID: requestID, headers: headers, parameters: parameters)
            do throws(PluginError) {
                return .success(try await supervisor.execute(plugin: name, context: context))
            } catch {
                return .failure(error)
            }
        }
        var response: Response
        switch answer {
        case let .success(result): response = Self.json(result)
        case let .failure(error): response = Self.errorResponse(error)
        }
        response.headers[.xRequestID] = requestID
        return response
    }

    /// An `abi: extism` call: the body is the input bytes, the answer the output bytes, typed as
    /// JSON when they parse as JSON and as `application/octet-stream` otherwise.
    private func callFunction(_ request: Request, name: String, function: String) async -> Response {
        let answer = await limitingInFlight(plugin: name, refused: { .failure($0) }) {
            () async -> Result<[UInt8], PluginError> in
            let body: ByteBuffer
            switch await Self.collectBody(of: request, limit: configuration.maxBodyBytes) {
            case let .failure(error): return .failure(error)
            case let .success(collected): body = collected
            }
            do throws(PluginError) {
                return .success(try await supervisor.call(plugin: name, function: function, input: Array(buffer: body)))
            } catch {
                return .failure(error)
            }
        }
        switch answer {
        case let .failure(error): return Self.errorResponse(error)
        case let .success(output):
            let isJSON = await supervisor.runBlocking { (try? JSONValue(parsing: output)) != nil }
            return Response(
                status: .ok, headers: [.contentType: isJSON ? "application/json" : "application/octet-stream"],
                body: .init(byteBuffer: ByteBuffer(bytes: output)))
        }
    }

    private func admin(_ request: Request, _ operation: ControlRequest) async -> Response {
        if let refusal = authorize(request) { return refusal }
        let answer = await perform(operation)
        if let error = answer.error { return Self.errorResponse(error) }
        logger.notice("admin: \(operation.op.rawValue)", metadata: operation.plugin.map { ["plugin": "\($0)"] } ?? [:])
        return Self.json(answer.result ?? .null)
    }

    /// The supervisor's answer, unless `maxInFlight` requests are already under way.
    private func perform(_ request: ControlRequest) async -> ControlResponse {
        await limitingInFlight(plugin: request.plugin, refused: { ControlResponse(error: $0) }) {
            await supervisor.respond(to: request)
        }
    }

    /// `work`'s answer, or `refused(overloaded)` at once when `maxInFlight` requests are under way.
    private func limitingInFlight<Answer>(
        plugin: String?, refused: (PluginError) -> Answer, _ work: () async -> Answer
    ) async -> Answer {
        guard inFlight.enter() else {
            return refused(
                PluginError(
                    .overloaded, plugin: plugin,
                    "the gateway has \(configuration.maxInFlight) requests in flight (--http-max-in-flight)"))
        }
        defer { inFlight.leave() }
        return await work()
    }

    private func metricsResponse() async -> Response {
        guard let registry = configuration.metrics else {
            return Self.errorResponse(
                PluginError(.badRequest, "metrics are not enabled on this gateway"), status: .notFound)
        }
        let text = await supervisor.runBlocking {
            supervisor.updateGauges()
            return registry.emitToBuffer()
        }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: text)))
    }

    // MARK: Requests

    /// The request's body, refused past `limit` bytes whether announced or sent chunked.
    private static func collectBody(of request: Request, limit: Int) async -> Result<ByteBuffer, PluginError> {
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            return .failure(Self.bodyTooLarge(limit))
        }
        do { return .success(try await request.body.collect(upTo: limit)) } catch is NIOTooManyBytesError {
            return .failure(Self.bodyTooLarge(limit))
        } catch {
            return .failure(PluginError(.badRequest, "cannot read the request body: \(error)"))
        }
    }

    /// The request's body as the plugin's parameters: `{"parameters": {...}}`, or any other
    /// JSON object taken as the parameters themselves; an empty body is no parameters.
    private static func parameters(from body: ByteBuffer) -> Result<[String: JSONValue], PluginError> {
        if body.readableBytes == 0 { return .success([:]) }
        let value: JSONValue
        let bytes = Array(buffer: body)
        do { value = try JSONValue(parsing: bytes) } catch {
            return .failure(PluginError(.badRequest, "the request body is not valid JSON: \(error)"))
        }
        guard case let .object(object) = value else {
            return .failure(
                PluginError(
                    .badRequest, "the request body must be a JSON object (the parameters, or {\"parameters\": {...}})"))
        }
        if object.count == 1, let wrapped = object["parameters"] {
            guard case let .object(parameters) = wrapped else {
                return .failure(PluginError(.badRequest, "\"parameters\" must be a JSON object"))
            }
            return .success(parameters)
        }
        return .success(object)
    }

    /// Credentials a client sends for the gateway or a proxy on the way (its bearer token, a
    /// proxy's login, session cookies of the site the gateway is served under): a plugin has no
    /// business with them, and an untrusted one could replay them.
    static let withheldHeaders: Set<HTTPField.Name> = [.authorization, .proxyAuthorization, .cookie]

    /// The request's headers for the plugin's context, by the rules the CLI follows too
    /// (`PluginContext.headers`); credentials (`withheldHeaders`) never reach a plugin.
    static func contextHeaders(_ fields: HTTPFields) -> [String: String] {
        PluginContext.headers(
            from: fields.lazy.filter { !withheldHeaders.contains($0.name) }
                .map { (name: $0.name.canonicalName, value: $0.value) })
    }

    /// The client's X-Request-ID when it is sensible (`PluginContext.requestIDRule`), a new UUID
    /// when there is none.
    static func requestID(_ header: String?) -> Result<String, PluginError> {
        guard let header else { return .success(PluginContext().requestID) }
        guard PluginContext.isValidRequestID(header) else {
            return .failure(PluginError(.badRequest, "X-Request-ID must be \(PluginContext.requestIDRule)"))
        }
        return .success(header)
    }

    /// nil when the request may perform admin operations; else the 401 to send.
    private func authorize(_ request: Request) -> Response? {
        guard let expected = adminTokenDigest else { return nil }
        let unauthorized = { (message: String) -> Response in
            var response = Self.errorResponse(PluginError(.unauthorized, message), status: .unauthorized)
            response.headers[.wwwAuthenticate] = "Bearer realm=\"plugvisor\""
            return response
        }
        guard let header = request.headers[.authorization] else {
            return unauthorized("this operation needs Authorization: Bearer <token> (the gateway's --token-file)")
        }
        let prefix = "Bearer "
        guard header.hasPrefix(prefix) else { return unauthorized("the Authorization header must be 'Bearer <token>'") }
        // Digests of equal length, compared without an early exit: the time taken says nothing
        // about how much of the token was right.
        let given = SHA256.hash(data: Array(header.dropFirst(prefix.count).utf8))
        var difference: UInt8 = 0
        for (a, b) in zip(given, expected) { difference |= a ^ b }
        return difference == 0 ? nil : unauthorized("wrong token")
    }

    // MARK: Responses

    /// The HTTP status for a typed supervisor error.
    public static func status(for code: PluginError.Code) -> HTTPResponse.Status {
        switch code {
        case .unknownPlugin: return .notFound
        case .badRequest: return .badRequest
        case .unauthorized: return .unauthorized
        case .overloaded: return .tooManyRequests
        case .timeout: return .gatewayTimeout
        case .workerCrashed, .killed, .trap, .outOfFuel, .outOfMemory, .invalidResult, .protocolViolation:
            return .badGateway
        case .stopped, .restartLimit, .circuitOpen, .loadFailed: return .serviceUnavailable
        case .invalidManifest, .reloadFailed: return .unprocessableContent
        case .payloadTooLarge: return .contentTooLarge
        default: return .internalServerError
        }
    }

    static func errorResponse(_ error: PluginError, status: HTTPResponse.Status? = nil) -> Response {
        var response = json(["error": error], status: status ?? Self.status(for: error.code))
        if error.code == .overloaded { response.headers[.retryAfter] = "1" }
        return response
    }

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let bytes =
            (try? JSONCoding.encode(value)) ?? Array(#"{"error":{"code":"internal","message":"cannot encode"}}"#.utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes + [UInt8(ascii: "\n")])))
    }

    private static func bodyTooLarge(_ limit: Int) -> PluginError {
        PluginError(.payloadTooLarge, "the request body is larger than \(limit) bytes (--http-max-body)")
    }
}

/// Errors Hummingbird itself raises (no such route, a bad path parameter) in the gateway's JSON
/// error body, like every other error.
struct JSONErrors<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do { return try await next(request, context) } catch let error as HTTPResponseError {
            let message =
                error.status == .notFound
                ? "no route \(request.method) \(request.uri.path); see the README's HTTP gateway section"
                : "\(error.status.reasonPhrase)"
            return Gateway.errorResponse(PluginError(.badRequest, message), status: error.status)
        }
    }
}

extension HTTPField.Name {
    static let xRequestID = Self("X-Request-ID")!
}
