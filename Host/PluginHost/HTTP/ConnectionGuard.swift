import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Per connection, between the HTTP/1 codec and Hummingbird: bounds how long a request's body may take
/// to arrive, and answers requests the HTTP parser rejects with the API's JSON error body and an
/// `X-Request-ID`, where Hummingbird would answer an empty 400.
///
/// How long a request's head may take is Hummingbird's idle timeout (set to the same read timeout): it
/// counts from the connection's start or the last response, and bytes that do not complete a head do
/// not reset it. A body that is still arriving when the read timeout has passed since its head fails
/// the request's body read with ``RequestBodyTimeout`` (408), and the connection closes after the answer.
///
/// After a parser error the connection cannot be read any further, so it always closes:
/// - outside any request, this handler writes the 400 itself;
/// - while a request's body is read, the body read fails with the parser error and the request's own
///   error answer (400 through ``ErrorMiddleware``) is the last response;
/// - once the request's answer has been written, nothing more is written.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let bodyTimeout: TimeAmount
    private var state = ConnectionGuardState()
    private var bodyDeadline: Scheduled<Void>?

    init(bodyTimeout: TimeAmount) {
        self.bodyTimeout = bodyTimeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = Self.unwrapInboundIn(data)
        switch state.read(part) {
        case .forward:
            context.fireChannelRead(data)
        case .forwardAndStopTimer:
            cancelDeadline()
            context.fireChannelRead(data)
        case .drop:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        startBodyDeadlineIfDue(context: context)
        context.fireChannelReadComplete()
    }

    /// The body deadline runs only for a request whose end has not arrived with its head (so the usual
    /// request costs no timer), and only while no earlier request of the connection awaits its answer:
    /// until then the server may not be reading, and the body's delay would not be the client's.
    private func startBodyDeadlineIfDue(context: ChannelHandlerContext) {
        guard state.isBodyDue, bodyDeadline == nil else { return }
        bodyDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: bodyTimeout) { [self] in
            bodyDeadline = nil
            bodyTimedOut(context: context)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch state.write(Self.unwrapOutboundIn(data)) {
        case .write:
            context.write(data, promise: promise)
            startBodyDeadlineIfDue(context: context)
        case .writeAndClose:
            // Closed once the answer is out: closing at once would drop what is flushed but not yet written.
            context.writeAndFlush(data).assumeIsolated().whenComplete { result in
                promise?.completeWith(result)
                context.close(promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError || error is ByteToMessageDecoderError else {
            context.fireErrorCaught(error)
            return
        }
        cancelDeadline()
        switch state.failed() {
        case .forward:
            context.fireErrorCaught(error)
        case .answerAndClose:
            answer(context: context, APIError(.malformedHTTP("\(error)")))
        case .close:
            context.close(promise: nil)
        case .ignore:
            break
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelDeadline()
    }

    private func bodyTimedOut(context: ChannelHandlerContext) {
        switch state.failed() {
        case .forward:
            context.fireErrorCaught(RequestBodyTimeout(timeout: bodyTimeout))
        case .answerAndClose, .close:
            context.close(promise: nil)
        case .ignore:
            break
        }
    }

    private func cancelDeadline() {
        bodyDeadline?.cancel()
        bodyDeadline = nil
    }

    private func answer(context: ChannelHandlerContext, _ error: APIError) {
        let requestID = HostRequestContext.makeRequestID()
        let body = ErrorMiddleware.body(for: error, requestID: requestID)
        let head = HTTPResponse(status: error.status, headerFields: [
            .contentType: "application/json", .contentLength: String(body.readableBytes), .connection: "close", .requestID: requestID,
        ])
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(Self.wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}

/// The body of a request did not arrive within the read timeout.
struct RequestBodyTimeout: Error, CustomStringConvertible {
    var timeout: TimeAmount
    var description: String { "the request body did not arrive within \(timeout.nanoseconds / 1_000_000_000) s" }
}

/// What ``ConnectionGuard`` knows of its connection, without I/O: whether a request's body is being
/// read, how many requests await their answer's end, and whether reading has failed.
struct ConnectionGuardState {
    private(set) var isReadingBody = false
    private var awaitingAnswer = 0

    /// Whether a body is being read that the client alone can hold up: its request is the only one of
    /// the connection that awaits an answer.
    var isBodyDue: Bool { isReadingBody && awaitingAnswer == 1 }
    private var hasFailed = false
    private var closeAfterAnswer = false

    enum ReadAction: Equatable { case forward, forwardAndStopTimer, drop }
    enum WriteAction: Equatable { case write, writeAndClose }
    enum FailureAction: Equatable { case forward, answerAndClose, close, ignore }

    mutating func read(_ part: HTTPRequestPart) -> ReadAction {
        guard !hasFailed else { return .drop }
        switch part {
        case .head:
            isReadingBody = true
            awaitingAnswer += 1
            return .forward
        case .body:
            return .forward
        case .end:
            isReadingBody = false
            return .forwardAndStopTimer
        }
    }

    mutating func write(_ part: HTTPResponsePart) -> WriteAction {
        // Informational heads (100 Continue) are followed by the final answer.
        if case .end = part {
            awaitingAnswer = max(0, awaitingAnswer - 1)
            if closeAfterAnswer, awaitingAnswer == 0 { return .writeAndClose }
        }
        return .write
    }

    /// Reading failed (a parser error, or the body's deadline passed): nothing more is read.
    mutating func failed() -> FailureAction {
        guard !hasFailed else { return .ignore }
        hasFailed = true
        let wasReadingBody = isReadingBody
        isReadingBody = false
        switch (wasReadingBody, awaitingAnswer > 0) {
        case (true, true):
            // The request being read fails its body read and answers; then the connection closes.
            closeAfterAnswer = true
            return .forward
        case (false, true):
            // An earlier request is still being answered: close once it has been.
            closeAfterAnswer = true
            return .ignore
        case (true, false):
            // Its answer has been written (the handler did not read the body): nothing to add.
            return .close
        case (false, false):
            return .answerAndClose
        }
    }
}
