import Foundation
import NIOCore
import NIOPosix

/// `PLUGIN_HOST_NIO_EXECUTOR=1`: Swift concurrency's jobs run on the NIO event loops instead of a pool
/// of their own (NIO's documented take-over, which Vapor offers too). A request's hops between the
/// server, the plugin call and the HTTP client to a remote then stay on one thread: a remote call's
/// added latency falls by about a third. But every await of a call that does not suspend costs more
/// (the in-process dispatch path about 7 times as much), and a plugin that blocks would block an event
/// loop. So it is opt-in; `make bench` measures both (see docs/performance.md).
public enum NIOExecutor {
    /// Whether the environment asks for it.
    public static var isRequested: Bool { ProcessInfo.processInfo.environment["PLUGIN_HOST_NIO_EXECUTOR"] == "1" }

    /// Installs the take-over when asked for; call it first thing in `main`, from the main thread.
    public static func installIfRequested() {
        if isRequested { NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() }
    }
}
