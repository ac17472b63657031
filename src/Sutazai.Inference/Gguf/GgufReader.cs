using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Sutazai.Inference.Gguf;

/// <summary>Options for <see cref="GgufReader"/>.</summary>
public sealed record GgufReaderOptions
{
    /// <summary>Default options (arrays up to 4096 elements are materialized).</summary>
    public static GgufReaderOptions Default { get; } = new();

    /// <summary>
    /// Arrays with more elements than this are skipped without allocating their contents; the
    /// resulting <see cref="GgufArray"/> only carries <see cref="GgufArray.Count"/>. Use
    /// <see cref="int.MaxValue"/> to load every array (e.g. to read the whole vocabulary).
    /// </summary>
    public int MaxArrayElements { get; init; } = 4096;
}

/// <summary>
/// Streaming reader for the GGUF header, metadata and tensor directory. Tensor data is never read
/// (only its extent is validated when the stream length is known). Supports GGUF v2 and v3
/// (little-endian). Malformed or truncated input raises <see cref="InvalidDataException"/>.
/// </summary>
public static class GgufReader
{
    /// <summary>"GGUF" read as a little-endian uint32.</summary>
    public const uint Magic = 0x46554747;

    /// <summary>Default tensor data alignment when <c>general.alignment</c> is absent.</summary>
    public const uint DefaultAlignment = 32;

    private const int MaxDimensions = 4;           // GGML_MAX_DIMS
    private const int MaxStringBytes = 256 << 20;  // sanity cap for a single string (chat templates are KBs)

    /// <summary>Reads the GGUF header of the file at <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">Not a GGUF file, unsupported version, or truncated/corrupt.</exception>
    public static GgufFile Read(string path, GgufReaderOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        try
        {
            return Read(stream, options);
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"{ex.Message} (file: {path})", ex);
        }
    }

    /// <summary>
    /// Reads a GGUF header from <paramref name="stream"/>, starting at its current position (which is
    /// treated as offset 0 of the file). A seekable stream is left positioned at
    /// <see cref="GgufFile.TensorDataOffset"/>; a non-seekable one somewhere after the tensor directory.
    /// Seekable streams allow skipping large arrays without reading them and truncation checks of the
    /// tensor data; non-seekable streams work too.
    /// </summary>
    /// <exception cref="InvalidDataException">Not a GGUF file, unsupported version, or truncated/corrupt.</exception>
    public static GgufFile Read(Stream stream, GgufReaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead)
        {
            throw new ArgumentException("Stream must be readable.", nameof(stream));
        }

        options ??= GgufReaderOptions.Default;
        var r = new Cursor(stream);
        try
        {
            return ReadCore(r, options);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException(
                $"Truncated GGUF file: unexpected end of data at byte {r.Position.ToString(CultureInfo.InvariantCulture)} while reading {r.Section}.");
        }
    }

    /// <summary>
    /// True when the stream starts (at its current position) with the GGUF magic. Restores the position
    /// of seekable streams; consumes up to 4 bytes of non-seekable ones.
    /// </summary>
    public static bool HasGgufMagic(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        long start = stream.CanSeek ? stream.Position : 0;
        Span<byte> magic = stackalloc byte[4];
        int read = stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
        if (stream.CanSeek)
        {
            stream.Position = start;
        }

        return read == 4 && BinaryPrimitives.ReadUInt32LittleEndian(magic) == Magic;
    }

    /// <summary>True when the file at <paramref name="path"/> starts with the GGUF magic.</summary>
    public static bool HasGgufMagic(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        return HasGgufMagic(stream);
    }

    private static GgufFile ReadCore(Cursor r, GgufReaderOptions options)
    {
        r.Section = "the GGUF magic";
        Span<byte> head = stackalloc byte[4];
        if (r.TryReadPrefix(head) < 4 || BinaryPrimitives.ReadUInt32LittleEndian(head) != Magic)
        {
            throw new InvalidDataException(
                "Not a GGUF file: the first 4 bytes are not the 'GGUF' magic" + DescribeMagic(head) + ".");
        }

        r.Section = "the GGUF version";
        uint version = r.ReadUInt32();
        if (version is 0 || (version & 0xFFFF) == 0)
        {
            throw new InvalidDataException(
                $"Unsupported GGUF file: version field 0x{version:X8} looks like a big-endian GGUF, which is not supported.");
        }

        if (version == 1)
        {
            throw new InvalidDataException("Unsupported GGUF version 1 (obsolete format); re-convert the model with a current llama.cpp.");
        }

        if (version > 3)
        {
            throw new InvalidDataException($"Unsupported GGUF version {version} (supported: 2, 3).");
        }

        r.Section = "the header";
        long tensorCount = CheckCount(r.ReadUInt64(), 32, r, "tensor count");
        long kvCount = CheckCount(r.ReadUInt64(), 12, r, "metadata count");

        var metadata = new Dictionary<string, object>(capacity: (int)Math.Min(kvCount, 4096), StringComparer.Ordinal);
        for (long i = 0; i < kvCount; i++)
        {
            r.Section = $"metadata entry #{i}";
            string key = r.ReadString();
            r.Section = $"metadata value '{key}'";
            var type = (GgufValueType)r.ReadUInt32();
            object value = ReadValue(r, type, options, depth: 0);
            if (!metadata.TryAdd(key, value))
            {
                throw new InvalidDataException($"Corrupt GGUF file: duplicate metadata key '{key}'.");
            }
        }

        uint alignment = DefaultAlignment;
        if (metadata.TryGetValue("general.alignment", out var alignObj))
        {
            alignment = alignObj is uint a && a != 0 && (a & (a - 1)) == 0
                ? a
                : throw new InvalidDataException($"Corrupt GGUF file: general.alignment must be a power-of-two uint32, got '{alignObj}'.");
        }

        var tensors = new List<GgufTensorInfo>((int)Math.Min(tensorCount, 65536));
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (long i = 0; i < tensorCount; i++)
        {
            r.Section = $"tensor info #{i}";
            string name = r.ReadString();
            r.Section = $"tensor info '{name}'";
            uint nDims = r.ReadUInt32();
            if (nDims is 0 or > MaxDimensions)
            {
                throw new InvalidDataException($"Corrupt GGUF file: tensor '{name}' has {nDims} dimensions (1..{MaxDimensions} allowed).");
            }

            var dims = new long[nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++)
            {
                ulong ne = r.ReadUInt64();
                if (ne > long.MaxValue)
                {
                    throw new InvalidDataException($"Corrupt GGUF file: tensor '{name}' dimension {d} is out of range.");
                }

                dims[d] = (long)ne;
                try
                {
                    elements = checked(elements * dims[d]);
                }
                catch (OverflowException)
                {
                    throw new InvalidDataException($"Corrupt GGUF file: tensor '{name}' element count overflows.");
                }
            }

            var type = (GgmlType)r.ReadUInt32();
            ulong offset = r.ReadUInt64();
            if (offset > long.MaxValue || offset % alignment != 0)
            {
                throw new InvalidDataException($"Corrupt GGUF file: tensor '{name}' data offset {offset} is not aligned to {alignment}.");
            }

            if (GgmlTypeInfo.IsKnown(type) && dims[0] % GgmlTypeInfo.BlockSize(type) != 0)
            {
                throw new InvalidDataException(
                    $"Corrupt GGUF file: tensor '{name}' row length {dims[0]} is not a multiple of the {GgmlTypeInfo.Name(type)} block size.");
            }

            if (!names.Add(name))
            {
                throw new InvalidDataException($"Corrupt GGUF file: duplicate tensor name '{name}'.");
            }

            tensors.Add(new GgufTensorInfo(name, dims, type, (long)offset));
        }

        long dataOffset = AlignUp(r.Position, alignment);
        long? dataLength = r.Length is long len ? len - dataOffset : null;
        long totalBytes = ComputeDataBytes(tensors, dataLength, out long dataEnd);

        if (dataLength is long available && tensors.Count > 0 && dataEnd > available)
        {
            throw new InvalidDataException(
                $"Truncated GGUF file: tensor data needs {dataOffset + dataEnd} bytes but the file has {dataOffset + available}.");
        }

        r.LeaveAt(Math.Min(dataOffset, r.Length ?? dataOffset));
        return new GgufFile(version, metadata, tensors, alignment, dataOffset, totalBytes);
    }

    private static long ComputeDataBytes(List<GgufTensorInfo> tensors, long? dataLength, out long dataEnd)
    {
        // Known types: exact size. Unknown types: distance to the next tensor (or to end of file).
        var byOffset = tensors.OrderBy(t => t.Offset).ToList();
        long total = 0;
        dataEnd = 0;
        for (int i = 0; i < byOffset.Count; i++)
        {
            var t = byOffset[i];
            long? size = t.ByteSize;
            if (size is null)
            {
                long next = i + 1 < byOffset.Count ? byOffset[i + 1].Offset : dataLength ?? t.Offset;
                size = Math.Max(0, next - t.Offset);
            }

            total += size.Value;
            dataEnd = Math.Max(dataEnd, t.Offset + size.Value);
        }

        return total;
    }

    private static object ReadValue(Cursor r, GgufValueType type, GgufReaderOptions options, int depth)
    {
        switch (type)
        {
            case GgufValueType.UInt8: return r.ReadByte();
            case GgufValueType.Int8: return (sbyte)r.ReadByte();
            case GgufValueType.UInt16: return r.ReadUInt16();
            case GgufValueType.Int16: return (short)r.ReadUInt16();
            case GgufValueType.UInt32: return r.ReadUInt32();
            case GgufValueType.Int32: return (int)r.ReadUInt32();
            case GgufValueType.Float32: return BitConverter.UInt32BitsToSingle(r.ReadUInt32());
            case GgufValueType.Bool:
                byte b = r.ReadByte();
                return b <= 1 ? b == 1 : throw new InvalidDataException($"Corrupt GGUF file: invalid bool value {b} in {r.Section}.");
            case GgufValueType.String: return r.ReadString();
            case GgufValueType.UInt64: return r.ReadUInt64();
            case GgufValueType.Int64: return (long)r.ReadUInt64();
            case GgufValueType.Float64: return BitConverter.UInt64BitsToDouble(r.ReadUInt64());
            case GgufValueType.Array:
                if (depth > 8)
                {
                    throw new InvalidDataException($"Corrupt GGUF file: arrays nested too deeply in {r.Section}.");
                }

                return ReadArray(r, options, depth);
            default:
                throw new InvalidDataException($"Corrupt GGUF file: unknown value type {(uint)type} in {r.Section}.");
        }
    }

    private static GgufArray ReadArray(Cursor r, GgufReaderOptions options, int depth)
    {
        var elementType = (GgufValueType)r.ReadUInt32();
        int fixedSize = FixedSize(elementType);
        if (fixedSize < 0 && elementType is not (GgufValueType.String or GgufValueType.Array))
        {
            throw new InvalidDataException($"Corrupt GGUF file: unknown array element type {(uint)elementType} in {r.Section}.");
        }

        // Minimum bytes per element: strings and nested arrays need at least their length header.
        long count = CheckCount(r.ReadUInt64(), fixedSize > 0 ? fixedSize : (elementType == GgufValueType.String ? 8 : 12), r, "array length");

        if (count > options.MaxArrayElements)
        {
            SkipArray(r, elementType, count, fixedSize, depth);
            return new GgufArray(elementType, count, null);
        }

        int n = (int)count;
        Array values = elementType switch
        {
            GgufValueType.UInt8 => ReadFixed(r, n, static s => s[0]),
            GgufValueType.Int8 => ReadFixed(r, n, static s => (sbyte)s[0]),
            GgufValueType.UInt16 => ReadFixed(r, n, BinaryPrimitives.ReadUInt16LittleEndian),
            GgufValueType.Int16 => ReadFixed(r, n, BinaryPrimitives.ReadInt16LittleEndian),
            GgufValueType.UInt32 => ReadFixed(r, n, BinaryPrimitives.ReadUInt32LittleEndian),
            GgufValueType.Int32 => ReadFixed(r, n, BinaryPrimitives.ReadInt32LittleEndian),
            GgufValueType.Float32 => ReadFixed(r, n, BinaryPrimitives.ReadSingleLittleEndian),
            GgufValueType.Bool => ReadFixed(r, n, static s => s[0] != 0),
            GgufValueType.UInt64 => ReadFixed(r, n, BinaryPrimitives.ReadUInt64LittleEndian),
            GgufValueType.Int64 => ReadFixed(r, n, BinaryPrimitives.ReadInt64LittleEndian),
            GgufValueType.Float64 => ReadFixed(r, n, BinaryPrimitives.ReadDoubleLittleEndian),
            GgufValueType.String => ReadStrings(r, n),
            _ => ReadNested(r, n, options, depth),
        };
        return new GgufArray(elementType, count, values);
    }

    private delegate T SpanParser<out T>(ReadOnlySpan<byte> source);

    private static T[] ReadFixed<T>(Cursor r, int count, SpanParser<T> parse)
    {
        int size = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        if (typeof(T) == typeof(bool))
        {
            size = 1;
        }

        var result = new T[count];
        Span<byte> tmp = stackalloc byte[8];
        for (int i = 0; i < count; i++)
        {
            r.ReadExactly(tmp[..size]);
            result[i] = parse(tmp[..size]);
        }

        return result;
    }

    private static string[] ReadStrings(Cursor r, int count)
    {
        var result = new string[count];
        for (int i = 0; i < count; i++)
        {
            result[i] = r.ReadString();
        }

        return result;
    }

    private static GgufArray[] ReadNested(Cursor r, int count, GgufReaderOptions options, int depth)
    {
        var result = new GgufArray[count];
        for (int i = 0; i < count; i++)
        {
            result[i] = ReadArray(r, options, depth + 1);
        }

        return result;
    }

    private static void SkipArray(Cursor r, GgufValueType elementType, long count, int fixedSize, int depth)
    {
        if (fixedSize > 0)
        {
            r.Skip(checked(count * fixedSize));
            return;
        }

        for (long i = 0; i < count; i++)
        {
            if (elementType == GgufValueType.String)
            {
                r.Skip(r.ReadStringLength());
            }
            else
            {
                if (depth > 8)
                {
                    throw new InvalidDataException($"Corrupt GGUF file: arrays nested too deeply in {r.Section}.");
                }

                var inner = (GgufValueType)r.ReadUInt32();
                int innerSize = FixedSize(inner);
                if (innerSize < 0 && inner is not (GgufValueType.String or GgufValueType.Array))
                {
                    throw new InvalidDataException($"Corrupt GGUF file: unknown array element type {(uint)inner} in {r.Section}.");
                }

                long innerCount = CheckCount(r.ReadUInt64(), Math.Max(innerSize, 8), r, "array length");
                SkipArray(r, inner, innerCount, innerSize, depth + 1);
            }
        }
    }

    private static int FixedSize(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
        _ => -1,
    };

    /// <summary>Rejects counts that cannot possibly fit in the remaining bytes (cheap corruption check).</summary>
    private static long CheckCount(ulong count, int minBytesPerItem, Cursor r, string what)
    {
        if (count > (ulong)(long.MaxValue / Math.Max(1, minBytesPerItem)))
        {
            throw new InvalidDataException($"Corrupt GGUF file: {what} {count} is out of range in {r.Section}.");
        }

        if (r.Remaining is long remaining && (long)count * minBytesPerItem > remaining)
        {
            throw new InvalidDataException(
                $"Truncated GGUF file: {what} {count} (in {r.Section}) needs at least {(long)count * minBytesPerItem} bytes but only {remaining} remain.");
        }

        return (long)count;
    }

    public static long AlignUp(long value, uint alignment) =>
        (value + alignment - 1) / alignment * alignment;

    private static string DescribeMagic(ReadOnlySpan<byte> head)
    {
        if (head.IsEmpty)
        {
            return " (empty input)";
        }

        var sb = new StringBuilder(" (found");
        foreach (byte b in head)
        {
            sb.Append(CultureInfo.InvariantCulture, $" 0x{b:X2}");
        }

        return sb.Append(')').ToString();
    }

    /// <summary>Buffered little-endian cursor over a stream with position tracking and cheap skipping.</summary>
    private sealed class Cursor
    {
        private readonly Stream _stream;
        private readonly byte[] _buffer = new byte[64 * 1024];
        private readonly long _origin;
        private int _pos;
        private int _len;
        private long _bufferStart; // logical position of _buffer[0]

        public Cursor(Stream stream)
        {
            _stream = stream;
            if (stream.CanSeek)
            {
                _origin = stream.Position;
                Length = stream.Length - _origin;
            }
        }

        public string Section { get; set; } = "the header";

        /// <summary>Logical position relative to where reading started.</summary>
        public long Position => _bufferStart + _pos;

        /// <summary>Total logical length when the stream is seekable.</summary>
        public long? Length { get; }

        public long? Remaining => Length - Position;

        /// <summary>Reads up to dest.Length bytes; returns how many were available (used for the magic only).</summary>
        public int TryReadPrefix(Span<byte> dest)
        {
            int total = 0;
            while (total < dest.Length)
            {
                if (_pos == _len && !Fill())
                {
                    break;
                }

                int n = Math.Min(dest.Length - total, _len - _pos);
                _buffer.AsSpan(_pos, n).CopyTo(dest[total..]);
                _pos += n;
                total += n;
            }

            dest[total..].Clear();
            return total;
        }

        public void ReadExactly(Span<byte> dest)
        {
            if (TryReadPrefix(dest) != dest.Length)
            {
                throw new EndOfStreamException();
            }
        }

        public byte ReadByte()
        {
            if (_pos == _len && !Fill())
            {
                throw new EndOfStreamException();
            }

            return _buffer[_pos++];
        }

        public ushort ReadUInt16()
        {
            Span<byte> s = stackalloc byte[2];
            ReadExactly(s);
            return BinaryPrimitives.ReadUInt16LittleEndian(s);
        }

        public uint ReadUInt32()
        {
            if (_len - _pos >= 4)
            {
                uint v = BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(_pos, 4));
                _pos += 4;
                return v;
            }

            Span<byte> s = stackalloc byte[4];
            ReadExactly(s);
            return BinaryPrimitives.ReadUInt32LittleEndian(s);
        }

        public ulong ReadUInt64()
        {
            if (_len - _pos >= 8)
            {
                ulong v = BinaryPrimitives.ReadUInt64LittleEndian(_buffer.AsSpan(_pos, 8));
                _pos += 8;
                return v;
            }

            Span<byte> s = stackalloc byte[8];
            ReadExactly(s);
            return BinaryPrimitives.ReadUInt64LittleEndian(s);
        }

        public long ReadStringLength()
        {
            ulong len = ReadUInt64();
            if (len > MaxStringBytes)
            {
                throw new InvalidDataException($"Corrupt GGUF file: string length {len} is out of range in {Section}.");
            }

            if (Remaining is long rem && (long)len > rem)
            {
                throw new EndOfStreamException();
            }

            return (long)len;
        }

        public string ReadString()
        {
            int len = (int)ReadStringLength();
            if (len == 0)
            {
                return string.Empty;
            }

            if (_len - _pos >= len)
            {
                string s = Encoding.UTF8.GetString(_buffer, _pos, len);
                _pos += len;
                return s;
            }

            byte[] tmp = len <= 1024 ? new byte[len] : GC.AllocateUninitializedArray<byte>(len);
            ReadExactly(tmp);
            return Encoding.UTF8.GetString(tmp);
        }

        public void Skip(long count)
        {
            long inBuffer = Math.Min(count, _len - _pos);
            _pos += (int)inBuffer;
            count -= inBuffer;
            if (count == 0)
            {
                return;
            }

            if (_stream.CanSeek)
            {
                long target = Position + count;
                if (target > Length)
                {
                    throw new EndOfStreamException();
                }

                _stream.Position = _origin + target;
                _bufferStart = target;
                _pos = _len = 0;
                return;
            }

            while (count > 0)
            {
                if (_pos == _len && !Fill())
                {
                    throw new EndOfStreamException();
                }

                int n = (int)Math.Min(count, _len - _pos);
                _pos += n;
                count -= n;
            }
        }

        /// <summary>Positions a seekable underlying stream at a logical offset (no-op otherwise).</summary>
        public void LeaveAt(long logical)
        {
            if (_stream.CanSeek)
            {
                _stream.Position = _origin + logical;
            }
        }

        private bool Fill()
        {
            _bufferStart += _len;
            _pos = _len = 0;
            int n = _stream.Read(_buffer, 0, _buffer.Length);
            _len = n;
            return n > 0;
        }
    }
}
