import Foundation
import PluginHostFormats

#if canImport(Glibc)
import Glibc
#endif

// plugin-host-worker: started by the host, one per library plugin run with `isolation: worker`. Its
// standard input is its end of a socket pair with the host (docs/workers.md); it is not meant to be
// started by hand.

// A host that is gone ends the worker: its end of the socket reads end-of-stream, and its parent
// changes (checked too, in case another process holds the host's end). Both are watched by threads of
// their own, so a plugin stuck in a loop does not keep its worker alive.
let parent = getppid()
Thread {
    while getppid() == parent { Thread.sleep(forTimeInterval: 1) }
    _exit(0)
}.start()

let worker = Worker(connection: WorkerConnection(descriptor: WorkerWire.socketDescriptor))
worker.run()
_exit(0)
