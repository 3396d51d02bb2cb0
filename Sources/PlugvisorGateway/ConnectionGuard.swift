import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTPTypes
import PlugvisorPosix

/// The gateway's open connections, kept so that slow clients cannot lock legitimate ones out
/// (slowloris): a connection waiting for a request head (a new one, or keep-alive between
/// requests) costs its client nothing to hold, so at the connection limit a newcomer takes the
/// place of the one that has waited longest, as nginx reuses its idle keep-alive connections.
/// Connections with a request under way are never evicted; when all of them have one, new
/// clients wait in the listen backlog.
final class ConnectionTable: @unchecked Sendable {
    // SAFETY: `connections`, `accepted` and `acceptPaused` are only touched under `lock`.
    private struct Connection {
        let channel: any Channel
        /// When it began to wait for a request head; nil while a request is under way.
        var waitingSince: ContinuousClock.Instant?
    }

    let limit: Int
    private let lock = Lock()
    private var connections: [ObjectIdentifier: Connection] = [:]
    /// Connections accepted and not yet closed, counted as the server accepts them: a new
    /// connection joins `connections` only once its pipeline is set up, a moment later.
    private var accepted = 0
    /// The server stopped accepting because every connection had a request under way.
    private var acceptPaused = false

    init(limit: Int) { self.limit = limit }

    /// Whether the server may accept one more connection: below the limit, or one can be evicted.
    func mayAccept() -> Bool {
        lock.withLock {
            let may = accepted < limit || connections.values.contains { $0.waitingSince != nil }
            acceptPaused = !may
            return may
        }
    }

    /// Admits a new connection. Returns the connection to close now: past the limit the one
    /// that has waited longest for a request head, or the newcomer itself when none waits.
    func opened(_ channel: any Channel) -> (any Channel)? {
        lock.withLock {
            let id = ObjectIdentifier(channel)
            connections[id] = Connection(channel: channel, waitingSince: .now)
            guard accepted > limit else { return nil }
            let evicted = longestWaiting(except: id) ?? id
            return connections.removeValue(forKey: evicted)?.channel
        }
    }

    func requestStarted(_ channel: any Channel) {
        lock.withLock { connections[ObjectIdentifier(channel)]?.waitingSince = nil }
    }

    /// The connection answered its last request and waits for another. Returns a connection to
    /// close when clients are waiting to be accepted: closing one lets the server accept again.
    func requestsFinished(_ channel: any Channel) -> (any Channel)? {
        lock.withLock {
            let id = ObjectIdentifier(channel)
            connections[id]?.waitingSince = .now
            guard acceptPaused, let evicted = longestWaiting(except: nil) else { return nil }
            acceptPaused = false
            return connections.removeValue(forKey: evicted)?.channel
        }
    }

    func acceptedOne() { lock.withLock { accepted += 1 } }
    func closedOne() { lock.withLock { accepted -= 1 } }

    func closed(_ channel: any Channel) {
        _ = lock.withLock { connections.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    private func longestWaiting(except excluded: ObjectIdentifier?) -> ObjectIdentifier? {
        var oldest: (id: ObjectIdentifier, since: ContinuousClock.Instant)?
        for (id, connection) in connections where id != excluded {
            guard let since = connection.waitingSince else { continue }
            if oldest.map({ since < $0.since }) ?? true { oldest = (id, since) }
        }
        return oldest?.id
    }
}

/// Hummingbird's accept gate, deciding with the table.
struct EvictingConnectionLimit: AvailableConnectionsDelegate {
    let table: ConnectionTable
    mutating func connectionOpened() { table.acceptedOne() }
    mutating func connectionClosed() { table.closedOne() }
    func isAcceptingNewConnections() -> Bool { table.mayAccept() }
}

/// One per connection, after the HTTP decoder: registers the connection in the table, tells it
/// when requests start and end, and closes a connection whose first request head has not
/// arrived within `headTimeout` (nginx's client_header_timeout). Between keep-alive requests
/// the server's idle timeout applies, and the connection may be evicted.
final class RequestHeadGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let table: ConnectionTable
    private let headTimeout: TimeAmount
    private var registered = false
    private var requestsInProgress = 0
    private var headDeadline: Scheduled<Void>?

    init(table: ConnectionTable, headTimeout: TimeAmount) {
        self.table = table
        self.headTimeout = headTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { register(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        register(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        headDeadline?.cancel()
        table.closed(context.channel)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        headDeadline?.cancel()
        table.closed(context.channel)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            headDeadline?.cancel()
            headDeadline = nil
            requestsInProgress += 1
            if requestsInProgress == 1 { table.requestStarted(context.channel) }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), requestsInProgress > 0 {
            requestsInProgress -= 1
            if requestsInProgress == 0 { table.requestsFinished(context.channel)?.close(promise: nil) }
        }
        context.write(data, promise: promise)
    }

    private func register(_ context: ChannelHandlerContext) {
        guard !registered else { return }
        registered = true
        table.opened(context.channel)?.close(promise: nil)
        let channel = context.channel
        headDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: headTimeout) { [self] in
            if requestsInProgress == 0 { channel.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension RequestHeadGuard: Sendable {}
