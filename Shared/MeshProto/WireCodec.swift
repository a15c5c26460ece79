import CMeshProto

// The one place that talks to protobuf-c's pack/unpack API. Each message type conforms to
// `CBridged` (its descriptor plus two conversion functions); everything else is generic.

/// A Swift message backed by one protobuf-c generated C struct.
protocol CBridged: MeshMessage {
    /// The generated C struct, e.g. `Mesh__V1__ActionRequest`.
    associatedtype CMessage
    /// The generated descriptor (`mesh__v1__..._descriptor`).
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { get }
    /// Copies `self` into `c`, a message already initialised by `protobuf_c_message_init`;
    /// strings, bytes and nested messages are allocated in `arena`.
    func fill(_ c: UnsafeMutablePointer<CMessage>, _ arena: inout WireArena)
    /// Reads a message that protobuf-c unpacked.
    init(c: UnsafePointer<CMessage>) throws(WireError)
}

/// Packs and unpacks any `CBridged` message through protobuf-c's descriptor-driven API.
enum WireCodec {
    /// Encodes `message` into an array of exactly its packed size.
    ///
    /// The corresponding C functions are `protobuf_c_message_get_packed_size` and
    /// `protobuf_c_message_pack`.
    static func encode<M: CBridged>(_ message: M) -> [UInt8] {
        // Small messages are built entirely in this stack buffer; larger ones spill to the heap.
        withUnsafeTemporaryAllocation(byteCount: WireArena.stackBytes, alignment: 16) { stack in
            var arena = WireArena(firstBlock: stack)
            // The generated struct starts with its ProtobufCMessage header.
            let base = UnsafeRawPointer(arena.message(message)).assumingMemoryBound(to: ProtobufCMessage.self)
            let size = protobuf_c_message_get_packed_size(base)
            return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                count = size == 0 ? 0 : protobuf_c_message_pack(base, buffer.baseAddress!)
            }
        }
    }

    /// Decodes a message of type `M` from `bytes` after checking `limits`.
    ///
    /// The corresponding C functions are `protobuf_c_message_unpack` and
    /// `protobuf_c_message_free_unpacked` (system allocator).
    static func decode<M: CBridged>(_ bytes: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) -> M {
        guard bytes.count <= limits.maxMessageBytes else {
            throw WireError(code: .tooLarge, messageType: M.messageType, byteCount: bytes.count)
        }
        let unpacked = withUnsafePointer(to: emptyInput) { empty in
            protobuf_c_message_unpack(
                M.descriptor, nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? empty)
        }
        guard let unpacked else {
            throw WireError(code: .malformed, messageType: M.messageType, byteCount: bytes.count)
        }
        defer { protobuf_c_message_free_unpacked(unpacked, nil) }
        do {
            // protobuf-c allocated the generated struct; ProtobufCMessage is its first member.
            return try M(c: UnsafeRawPointer(unpacked).assumingMemoryBound(to: M.CMessage.self))
        } catch {
            throw WireError(code: error.code, messageType: M.messageType, field: error.field, byteCount: bytes.count)
        }
    }

    private static let emptyInput: UInt8 = 0
}

/// Bump allocator for the C side of one encode: every string, byte buffer and nested
/// message lives here until the arena is destroyed, right after packing.
struct WireArena: ~Copyable {
    private var block: UnsafeMutableRawPointer?  // newest heap block; its first word links the previous one
    private var cursor: UnsafeMutableRawPointer?
    private var end: UnsafeMutableRawPointer?

    private static let header = MemoryLayout<UnsafeMutableRawPointer?>.stride
    private static let blockSize = 4096
    /// Size of the caller-provided first block used by `WireCodec.encode`.
    static let stackBytes = 1024

    /// An arena that starts in `firstBlock` (owned by the caller, never freed here).
    init(firstBlock: UnsafeMutableRawBufferPointer) {
        cursor = firstBlock.baseAddress
        end = firstBlock.baseAddress.map { $0 + firstBlock.count }
    }

    init() {}

    deinit {
        var next = block
        while let current = next {
            next = current.load(as: UnsafeMutableRawPointer?.self)
            current.deallocate()
        }
    }

    /// Uninitialised memory for `byteCount` bytes, aligned to `alignment` (a power of two ≤ 16).
    mutating func allocate(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        if let cursor, let end {
            let aligned = cursor.alignedUp(toMultipleOf: alignment)
            if aligned + byteCount <= end {
                self.cursor = aligned + byteCount
                return aligned
            }
        }
        let size = max(Self.blockSize, Self.header + byteCount + 16)  // + 16: room to align
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        fresh.storeBytes(of: block, as: UnsafeMutableRawPointer?.self)
        block = fresh
        end = fresh + size
        let aligned = (fresh + Self.header).alignedUp(toMultipleOf: alignment)
        cursor = aligned + byteCount
        return aligned
    }

    /// A NUL-terminated copy of `string`, or `nil` for the empty string (the field keeps
    /// protobuf-c's default, which encodes as absent).
    mutating func cString(_ string: String) -> UnsafeMutablePointer<CChar>? {
        let utf8 = string.utf8
        if utf8.isEmpty { return nil }
        let count = utf8.count
        let raw = allocate(byteCount: count + 1, alignment: 1)
        let bytes = raw.bindMemory(to: UInt8.self, capacity: count + 1)
        _ = UnsafeMutableBufferPointer(start: bytes, count: count).initialize(from: utf8)
        bytes[count] = 0
        return raw.assumingMemoryBound(to: CChar.self)
    }

    /// Sets a C string field unless `string` is empty.
    mutating func set(_ field: inout UnsafeMutablePointer<CChar>?, _ string: String) {
        if let copy = cString(string) { field = copy }
    }

    /// A protobuf-c bytes value holding a copy of `bytes`.
    mutating func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        if bytes.isEmpty { return ProtobufCBinaryData(len: 0, data: nil) }
        let raw = allocate(byteCount: bytes.count, alignment: 1)
        bytes.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return ProtobufCBinaryData(len: bytes.count, data: raw.assumingMemoryBound(to: UInt8.self))
    }

    /// A C message initialised by `protobuf_c_message_init` from `descriptor`.
    mutating func cMessage<C>(_: C.Type, _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> UnsafeMutablePointer<C> {
        let raw = allocate(byteCount: Int(descriptor.pointee.sizeof_message), alignment: MemoryLayout<C>.alignment)
        protobuf_c_message_init(descriptor, raw)
        return raw.assumingMemoryBound(to: C.self)
    }

    /// The C form of a nested message.
    mutating func message<M: CBridged>(_ message: M) -> UnsafeMutablePointer<M.CMessage> {
        let c = cMessage(M.CMessage.self, M.descriptor)
        message.fill(c, &self)
        return c
    }

    /// An array of `count` pointers to C messages, for a repeated or map field.
    mutating func pointerArray<C>(_: C.Type, count: Int) -> UnsafeMutablePointer<UnsafeMutablePointer<C>?> {
        allocate(byteCount: count * MemoryLayout<UnsafeMutablePointer<C>?>.stride, alignment: MemoryLayout<UnsafeMutablePointer<C>?>.alignment)
            .bindMemory(to: UnsafeMutablePointer<C>?.self, capacity: count)
    }

    /// Fills a repeated message field (`n_x`, `x`).
    mutating func set<M: CBridged>(
        _ count: inout Int, _ items: inout UnsafeMutablePointer<UnsafeMutablePointer<M.CMessage>?>?, _ values: [M]
    ) {
        guard !values.isEmpty else { return }
        let array = pointerArray(M.CMessage.self, count: values.count)
        for (index, value) in values.enumerated() { array[index] = message(value) }
        count = values.count
        items = array
    }

    /// Fills a `map<string, string>` field (`n_x`, `x`), entries sorted by key so the
    /// encoding is deterministic.
    mutating func set<E: CStringMapEntry>(
        _ count: inout Int, _ items: inout UnsafeMutablePointer<UnsafeMutablePointer<E>?>?, _ map: [String: String]
    ) {
        guard !map.isEmpty else { return }
        let array = pointerArray(E.self, count: map.count)
        for (index, pair) in map.sorted(by: { $0.key < $1.key }).enumerated() {
            let entry = cMessage(E.self, E.descriptor)
            set(&entry.pointee.key, pair.key)
            set(&entry.pointee.value, pair.value)
            array[index] = entry
        }
        count = map.count
        items = array
    }

    /// Fills a repeated scalar field (`n_x`, `x`).
    mutating func set<T: BitwiseCopyable>(_ count: inout Int, _ items: inout UnsafeMutablePointer<T>?, _ values: [T]) {
        guard !values.isEmpty else { return }
        let raw = allocate(byteCount: values.count * MemoryLayout<T>.stride, alignment: MemoryLayout<T>.alignment)
        values.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        count = values.count
        items = raw.assumingMemoryBound(to: T.self)
    }
}

/// A generated `map<string, string>` entry struct (`key`, `value`).
protocol CStringMapEntry {
    static var descriptor: UnsafePointer<ProtobufCMessageDescriptor> { get }
    var key: UnsafeMutablePointer<CChar>! { get set }
    var value: UnsafeMutablePointer<CChar>! { get set }
}

/// Reading the fields of an unpacked C message, with the failing field named in errors.
enum WireRead {
    /// A string field: `NULL` reads as empty; invalid UTF-8 is `.invalidValue`.
    static func string(_ pointer: UnsafePointer<CChar>?, _ field: StaticString) throws(WireError) -> String {
        guard let pointer, pointer.pointee != 0 else { return "" }
        guard let string = String(validatingCString: pointer) else { throw invalid(field) }
        return string
    }

    /// A bytes field.
    static func bytes(_ binary: ProtobufCBinaryData) -> [UInt8] {
        guard binary.len > 0, let data = binary.data else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: binary.len))
    }

    /// A nested message field; `NULL` reads as `nil`.
    static func message<M: CBridged>(_ pointer: UnsafeMutablePointer<M.CMessage>?, _: M.Type = M.self) throws(WireError) -> M? {
        guard let pointer else { return nil }
        return try M(c: pointer)
    }

    /// A repeated message field; a `NULL` element (never produced by protobuf-c) reads as
    /// the default message.
    static func messages<M: CBridged>(_ count: Int, _ items: UnsafeMutablePointer<UnsafeMutablePointer<M.CMessage>?>?) throws(WireError) -> [M] {
        guard count > 0, let items else { return [] }
        var result: [M] = []
        result.reserveCapacity(count)
        for index in 0..<count {
            guard let item = items[index] else { throw invalid("repeated element") }
            result.append(try M(c: item))
        }
        return result
    }

    /// A `map<string, string>` field; for a repeated key the last entry wins (protobuf rule).
    static func map<E: CStringMapEntry>(
        _ count: Int, _ items: UnsafeMutablePointer<UnsafeMutablePointer<E>?>?, _ field: StaticString
    ) throws(WireError) -> [String: String] {
        guard count > 0, let items else { return [:] }
        var result: [String: String] = [:]
        result.reserveCapacity(count)
        for index in 0..<count {
            guard let entry = items[index]?.pointee else { throw invalid(field) }
            result[try string(entry.key, field)] = try string(entry.value, field)
        }
        return result
    }

    /// A repeated scalar field.
    static func scalars<T>(_ count: Int, _ items: UnsafeMutablePointer<T>?) -> [T] {
        guard count > 0, let items else { return [] }
        return Array(UnsafeBufferPointer(start: items, count: count))
    }

    /// An `.invalidValue` error for `field` (type and size are filled in by `WireCodec`).
    static func invalid(_ field: StaticString) -> WireError {
        WireError(code: .invalidValue, messageType: "", field: "\(field)", byteCount: 0)
    }
}

/// An open protobuf enum: every wire value maps to a case, unknown ones to `.unrecognized`.
protocol WireEnum: RawRepresentable where RawValue == Int32 {
    init(rawValue: Int32)
}

extension WireEnum {
    /// Converts to the generated C enum (same numbering).
    func c<E: RawRepresentable>(_: E.Type = E.self) -> E where E.RawValue: FixedWidthInteger {
        E(rawValue: E.RawValue(truncatingIfNeeded: rawValue))!
    }

    /// Converts from the generated C enum; any value is accepted.
    init<E: RawRepresentable>(c: E) where E.RawValue: FixedWidthInteger {
        self.init(rawValue: Int32(truncatingIfNeeded: c.rawValue))
    }
}

extension WireCodec {
    /// The name protobuf-c's descriptor gives `M` (its `name` field), e.g. `mesh.v1.ActionRequest`.
    static func descriptorName<M: CBridged>(_: M.Type) -> String {
        String(cString: M.descriptor.pointee.name)
    }
}
