#if canImport(Glibc)
import Glibc
#endif

/// Random access to the bytes of a library, read on demand, so that checking a library never holds it
/// whole in memory. Reads past the end are errors, never short reads.
package protocol ByteSource {
    /// The number of bytes.
    var size: UInt64 { get }
    /// `count` bytes from `offset`; throws when any of them lies past ``size``.
    func bytes(at offset: UInt64, count: Int) throws(ByteSourceError) -> [UInt8]
}

package enum ByteSourceError: Error, Equatable, CustomStringConvertible {
    /// The range asked for lies (partly) past the end.
    case outOfBounds
    /// The operating system refused a read.
    case io(String)

    package var description: String {
        switch self {
        case .outOfBounds: "ends before the data it describes"
        case .io(let why): "cannot be read: \(why)"
        }
    }
}

extension ByteSource {
    /// Whether `count` bytes from `offset` lie within the source, computed without overflow.
    package func contains(offset: UInt64, count: UInt64) -> Bool {
        let (end, overflow) = offset.addingReportingOverflow(count)
        return !overflow && end <= size
    }

    /// Every byte, in chunks of at most `chunkSize`, in order.
    package func forEachChunk(chunkSize: Int = 1 << 20, _ body: ([UInt8]) -> Void) throws(ByteSourceError) {
        var offset: UInt64 = 0
        while offset < size {
            let count = Int(min(UInt64(chunkSize), size - offset))
            body(try bytes(at: offset, count: count))
            offset += UInt64(count)
        }
    }
}

/// Bytes in memory, for tests and fuzzing.
extension Array: ByteSource where Element == UInt8 {
    package var size: UInt64 { UInt64(count) }

    package func bytes(at offset: UInt64, count: Int) throws(ByteSourceError) -> [UInt8] {
        guard count >= 0, contains(offset: offset, count: UInt64(count)) else { throw .outOfBounds }
        let start = Int(offset)
        return Array(self[start..<start + count])
    }
}

/// A regular file, opened once and read with `pread`.
package final class FileBytes: ByteSource {
    package let size: UInt64
    private let descriptor: CInt

    package enum OpenError: Error, Equatable {
        case notFound
        case notRegularFile
        case io(String)
    }

    /// Opens `path` for reading. FIFOs, devices and folders are refused before anything is read from
    /// them (a FIFO would block the reader, `/dev/zero` never ends).
    package init(path: String) throws(OpenError) {
        // O_NONBLOCK: opening a FIFO with no writer would otherwise wait for one.
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else {
            let code = errno
            throw code == ENOENT || code == ENOTDIR ? .notFound : .io(String(cString: strerror(code)))
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let why = String(cString: strerror(errno))
            close(descriptor)
            throw .io(why)
        }
        guard status.st_mode & S_IFMT == S_IFREG, status.st_size >= 0 else {
            close(descriptor)
            throw .notRegularFile
        }
        self.descriptor = descriptor
        self.size = UInt64(status.st_size)
    }

    deinit {
        close(descriptor)
    }

    package func bytes(at offset: UInt64, count: Int) throws(ByteSourceError) -> [UInt8] {
        guard count >= 0, contains(offset: offset, count: UInt64(count)) else { throw .outOfBounds }
        var result = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            // Inside the loop count > 0, so the buffer has an address.
            let read = result.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            }
            if read < 0 && errno == EINTR { continue }
            guard read > 0 else {
                // The file shrank since it was opened, or the read failed.
                throw read == 0 ? .outOfBounds : .io(String(cString: strerror(errno)))
            }
            done += read
        }
        return result
    }
}
