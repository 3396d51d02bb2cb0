import ArgumentParser
import Foundation
import PlugvisorProtocol

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop the supervisor gracefully: drain calls, end every worker, exit.")

    @OptionGroup var control: ControlOptions

    func run() throws {
        let client = ControlClient(path: control.path)
        switch client.send(ControlRequest(op: .stop)) {
        case let .failure(error): Output.fail(error)
        case let .success(response):
            if let error = response.error { Output.fail(error) }
        }
        // Return only once the supervisor is gone, so that scripts can rely on it.
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if case .failure = client.send(ControlRequest(op: .status)) { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        Output.fail(PluginError(.internalError, "the supervisor did not exit within 60s"))
    }
}
