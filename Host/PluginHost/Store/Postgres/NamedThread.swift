import Foundation

/// Starts a thread of its own running `body`, named `name` (at most 15 characters, so that `top -H`,
/// `perf` and `/proc/<pid>/task/*/comm` show it whole).
///
/// The thread names itself, before `body` runs, by writing its `/proc/thread-self/comm` (what
/// `pthread_setname_np` does on Linux; Swift's Glibc module does not export that call). Foundation's
/// `Thread.current.name = …` is not enough: it names the kernel thread only once `start()` has stored
/// the thread's handle, so a thread that runs before its creator gets that far keeps the creator's name
/// (seen on about 1 thread in 100 created from a busy cooperative pool).
func startNamedThread(_ name: String, _ body: @escaping @Sendable () -> Void) {
    Thread {
        try? Data(name.utf8.prefix(15)).write(to: URL(fileURLWithPath: "/proc/thread-self/comm"))
        body()
    }.start()
}
