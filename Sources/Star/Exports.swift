// The vocabulary every handler needs comes with `import Star`: HTTP types (methods, statuses,
// header fields), byte buffers and loggers.
@_exported public import HTTPTypes
@_exported public import struct NIOCore.ByteBuffer
@_exported public import struct Logging.Logger
