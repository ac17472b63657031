using Sutazai.Inference.Gguf;

using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace Sutazai.TestSupport;

/// <summary>
/// Produces float tensor data chunk by chunk: fill <paramref name="destination"/> with the elements
/// starting at flat element index <paramref name="firstElement"/> (ggml order: <c>ne[0]</c> fastest).
/// </summary>
public delegate void TensorFill(Span<float> destination, long firstElement);

/// <summary>
/// Writes little-endian GGUF v3 files: metadata key/values (in insertion order), tensor infos and
/// aligned tensor data. Tensor data is produced lazily at <see cref="WriteTo(Stream)"/> time, so
/// large tensors can be streamed without holding them in memory. F32 and F16 tensors can be built
/// from floats; any other type can be written as raw bytes.
/// </summary>
public sealed class GgufWriter
{
    private const int ChunkElements = 64 * 1024;

    private readonly List<(string Key, GgufValueType Type, Action<BinaryWriter> Write)> _metadata = [];
    private readonly HashSet<string> _keys = new(StringComparer.Ordinal);
    private readonly List<PendingTensor> _tensors = [];
    private readonly HashSet<string> _tensorNames = new(StringComparer.Ordinal);

    /// <param name="alignment">Tensor data alignment (power of two). Values other than 32 are recorded as <c>general.alignment</c>.</param>
    public GgufWriter(uint alignment = GgufReader.DefaultAlignment)
    {
        if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(alignment), alignment, "Alignment must be a power of two.");
        }

        Alignment = alignment;
        if (alignment != GgufReader.DefaultAlignment)
        {
            AddUInt32("general.alignment", alignment);
        }
    }

    /// <summary>Tensor data alignment in bytes.</summary>
    public uint Alignment { get; }

    /// <summary>Number of metadata entries added so far.</summary>
    public int MetadataCount => _metadata.Count;

    /// <summary>Number of tensors added so far.</summary>
    public int TensorCount => _tensors.Count;

    public GgufWriter AddUInt8(string key, byte value) => Add(key, GgufValueType.UInt8, w => w.Write(value));

    public GgufWriter AddInt8(string key, sbyte value) => Add(key, GgufValueType.Int8, w => w.Write(value));

    public GgufWriter AddUInt16(string key, ushort value) => Add(key, GgufValueType.UInt16, w => w.Write(value));

    public GgufWriter AddInt16(string key, short value) => Add(key, GgufValueType.Int16, w => w.Write(value));

    public GgufWriter AddUInt32(string key, uint value) => Add(key, GgufValueType.UInt32, w => w.Write(value));

    public GgufWriter AddInt32(string key, int value) => Add(key, GgufValueType.Int32, w => w.Write(value));

    public GgufWriter AddUInt64(string key, ulong value) => Add(key, GgufValueType.UInt64, w => w.Write(value));

    public GgufWriter AddInt64(string key, long value) => Add(key, GgufValueType.Int64, w => w.Write(value));

    public GgufWriter AddFloat32(string key, float value) => Add(key, GgufValueType.Float32, w => w.Write(value));

    public GgufWriter AddFloat64(string key, double value) => Add(key, GgufValueType.Float64, w => w.Write(value));

    public GgufWriter AddBool(string key, bool value) => Add(key, GgufValueType.Bool, w => w.Write((byte)(value ? 1 : 0)));

    public GgufWriter AddString(string key, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return Add(key, GgufValueType.String, w => WriteString(w, value));
    }

    /// <summary>
    /// Adds an array value. Supported element types: byte, sbyte, ushort, short, uint, int, ulong, long,
    /// float, double, bool and string. The values are copied.
    /// </summary>
    public GgufWriter AddArray<T>(string key, IEnumerable<T> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        T[] copy = values.ToArray();
        GgufValueType elementType = ElementTypeOf(typeof(T));
        return Add(key, GgufValueType.Array, w =>
        {
            w.Write((uint)elementType);
            w.Write((ulong)copy.LongLength);
            foreach (T item in copy)
            {
                WriteScalar(w, elementType, item!);
            }
        });
    }

    /// <summary>
    /// Adds a boxed value of any type <see cref="GgufReader"/> produces (byte, sbyte, ushort, short, uint,
    /// int, float, bool, string, ulong, long, double, or a materialized <see cref="GgufArray"/>, nested
    /// arrays included). Useful for copying or editing the metadata of an existing file.
    /// </summary>
    public GgufWriter AddValue(string key, object value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value is GgufArray array)
        {
            ValidateArray(array);
            return Add(key, GgufValueType.Array, w => WriteArray(w, array));
        }

        GgufValueType type = ElementTypeOf(value.GetType());
        return Add(key, type, w => WriteScalar(w, type, value));
    }

    private static void ValidateArray(GgufArray array)
    {
        if (array.Values is null)
        {
            throw new ArgumentException($"Cannot write a {array} array that was not materialized; read it with a larger GgufReaderOptions.MaxArrayElements.");
        }

        if (array.ElementType == GgufValueType.Array)
        {
            foreach (GgufArray inner in array.Values)
            {
                ValidateArray(inner);
            }
        }
    }

    private static void WriteArray(BinaryWriter w, GgufArray array)
    {
        w.Write((uint)array.ElementType);
        w.Write((ulong)array.Count);
        foreach (object item in array.Values!)
        {
            if (array.ElementType == GgufValueType.Array)
            {
                WriteArray(w, (GgufArray)item);
            }
            else
            {
                WriteScalar(w, array.ElementType, item);
            }
        }
    }

    /// <summary>Adds an F32 tensor from memory (the memory must stay unchanged until written).</summary>
    /// <param name="dimensions">ggml dimensions, innermost first (<c>ne[0]</c> = row length).</param>
    public GgufWriter AddTensor(string name, ReadOnlyMemory<float> data, params long[] dimensions) =>
        AddTensor(name, GgmlType.F32, data, dimensions);

    /// <summary>Adds an F32, F16 or BF16 tensor from floats in memory (converted when written).</summary>
    public GgufWriter AddTensor(string name, GgmlType type, ReadOnlyMemory<float> data, params long[] dimensions)
    {
        long elements = ElementCount(dimensions);
        if (data.Length != elements)
        {
            throw new ArgumentException($"Tensor '{name}': {data.Length} values supplied for {elements} elements.", nameof(data));
        }

        return AddTensor(name, type, dimensions, (dest, first) => data.Span.Slice((int)first, dest.Length).CopyTo(dest));
    }

    /// <summary>Adds an F32, F16 or BF16 tensor whose values are generated chunk by chunk at write time.</summary>
    public GgufWriter AddTensor(string name, GgmlType type, IReadOnlyList<long> dimensions, TensorFill fill)
    {
        ArgumentNullException.ThrowIfNull(fill);
        if (type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
        {
            throw new ArgumentException($"Float fill supports F32, F16 and BF16 only (got {type}); use the raw-bytes overload for other types.", nameof(type));
        }

        long elements = ElementCount(dimensions);
        return AddPending(name, type, dimensions, stream => WriteFloats(stream, type, elements, fill));
    }

    /// <summary>
    /// Adds a tensor of any ggml type whose raw bytes are written by <paramref name="writeData"/> at
    /// write time. Exactly <see cref="GgmlTypeInfo.TensorBytes"/> bytes must be written.
    /// </summary>
    public GgufWriter AddTensor(string name, GgmlType type, IReadOnlyList<long> dimensions, Action<Stream> writeData)
    {
        ArgumentNullException.ThrowIfNull(writeData);
        return AddPending(name, type, dimensions, writeData);
    }

    /// <summary>Writes the file to <paramref name="path"/> (created or overwritten).</summary>
    public void WriteTo(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1 << 20);
        WriteTo(file);
    }

    /// <summary>Writes the whole file to <paramref name="stream"/> starting at its current position.</summary>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var counting = new CountingStream(stream);
        using (var w = new BinaryWriter(counting, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(GgufReader.Magic);
            w.Write(3u);
            w.Write((ulong)_tensors.Count);
            w.Write((ulong)_metadata.Count);
            foreach (var (key, type, write) in _metadata)
            {
                WriteString(w, key);
                w.Write((uint)type);
                write(w);
            }

            long offset = 0;
            foreach (var t in _tensors)
            {
                WriteString(w, t.Name);
                w.Write((uint)t.Dimensions.Length);
                foreach (long d in t.Dimensions)
                {
                    w.Write((ulong)d);
                }

                w.Write((uint)t.Type);
                w.Write((ulong)offset);
                offset = GgufReader.AlignUp(offset + t.ByteSize, Alignment);
            }

            w.Flush();
        }

        Pad(counting);
        foreach (var t in _tensors)
        {
            long start = counting.Written;
            t.WriteData(counting);
            long written = counting.Written - start;
            if (written != t.ByteSize)
            {
                throw new InvalidOperationException($"Tensor '{t.Name}': {written} bytes written, expected {t.ByteSize}.");
            }

            Pad(counting);
        }

        counting.Flush();
    }

    private void Pad(CountingStream s)
    {
        long padding = GgufReader.AlignUp(s.Written, Alignment) - s.Written;
        if (padding > 0)
        {
            s.Write(new byte[padding]);
        }
    }

    private GgufWriter Add(string key, GgufValueType type, Action<BinaryWriter> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        if (!_keys.Add(key))
        {
            throw new ArgumentException($"Metadata key '{key}' was already added.", nameof(key));
        }

        _metadata.Add((key, type, write));
        return this;
    }

    private GgufWriter AddPending(string name, GgmlType type, IReadOnlyList<long> dimensions, Action<Stream> writeData)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (Encoding.UTF8.GetByteCount(name) >= 64)
        {
            throw new ArgumentException($"Tensor name '{name}' is longer than ggml's 63-byte limit.", nameof(name));
        }

        ElementCount(dimensions);
        long bytes = GgmlTypeInfo.TensorBytes(type, dimensions)
            ?? throw new ArgumentException($"Tensor '{name}': type {type} is unknown or ne[0]={dimensions[0]} is not a multiple of its block size.", nameof(dimensions));
        if (!_tensorNames.Add(name))
        {
            throw new ArgumentException($"Tensor '{name}' was already added.", nameof(name));
        }

        _tensors.Add(new PendingTensor(name, type, dimensions.ToArray(), bytes, writeData));
        return this;
    }

    private static long ElementCount(IReadOnlyList<long> dimensions)
    {
        ArgumentNullException.ThrowIfNull(dimensions);
        if (dimensions.Count is 0 or > 4)
        {
            throw new ArgumentException("A tensor needs 1 to 4 dimensions.", nameof(dimensions));
        }

        long n = 1;
        foreach (long d in dimensions)
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(d, nameof(dimensions));
            n = checked(n * d);
        }

        return n;
    }

    private static void WriteFloats(Stream stream, GgmlType type, long elements, TensorFill fill)
    {
        int elementSize = type == GgmlType.F32 ? 4 : 2;
        float[] values = new float[(int)Math.Min(ChunkElements, elements)];
        byte[] bytes = new byte[values.Length * elementSize];
        for (long first = 0; first < elements; first += values.Length)
        {
            int n = (int)Math.Min(values.Length, elements - first);
            Span<float> chunk = values.AsSpan(0, n);
            chunk.Clear();
            fill(chunk, first);
            Span<byte> outBytes = bytes.AsSpan(0, n * elementSize);
            switch (type)
            {
                case GgmlType.F32 when BitConverter.IsLittleEndian:
                    MemoryMarshal.AsBytes(chunk).CopyTo(outBytes);
                    break;
                case GgmlType.F32:
                    for (int i = 0; i < n; i++)
                    {
                        BinaryPrimitives.WriteSingleLittleEndian(outBytes[(i * 4)..], chunk[i]);
                    }

                    break;
                case GgmlType.F16:
                    for (int i = 0; i < n; i++)
                    {
                        BinaryPrimitives.WriteHalfLittleEndian(outBytes[(i * 2)..], (Half)chunk[i]);
                    }

                    break;
                default: // BF16, round-to-nearest-even
                    for (int i = 0; i < n; i++)
                    {
                        uint bits = BitConverter.SingleToUInt32Bits(chunk[i]);
                        ushort bf = float.IsNaN(chunk[i])
                            ? (ushort)((bits >> 16) | 0x40)
                            : (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
                        BinaryPrimitives.WriteUInt16LittleEndian(outBytes[(i * 2)..], bf);
                    }

                    break;
            }

            stream.Write(outBytes);
        }
    }

    private static void WriteString(BinaryWriter w, string value)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(value);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static GgufValueType ElementTypeOf(Type t) =>
        t == typeof(byte) ? GgufValueType.UInt8
        : t == typeof(sbyte) ? GgufValueType.Int8
        : t == typeof(ushort) ? GgufValueType.UInt16
        : t == typeof(short) ? GgufValueType.Int16
        : t == typeof(uint) ? GgufValueType.UInt32
        : t == typeof(int) ? GgufValueType.Int32
        : t == typeof(ulong) ? GgufValueType.UInt64
        : t == typeof(long) ? GgufValueType.Int64
        : t == typeof(float) ? GgufValueType.Float32
        : t == typeof(double) ? GgufValueType.Float64
        : t == typeof(bool) ? GgufValueType.Bool
        : t == typeof(string) ? GgufValueType.String
        : throw new ArgumentException($"GGUF arrays of {t} are not supported.");

    private static void WriteScalar(BinaryWriter w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write((byte)value); break;
            case GgufValueType.Int8: w.Write((sbyte)value); break;
            case GgufValueType.UInt16: w.Write((ushort)value); break;
            case GgufValueType.Int16: w.Write((short)value); break;
            case GgufValueType.UInt32: w.Write((uint)value); break;
            case GgufValueType.Int32: w.Write((int)value); break;
            case GgufValueType.UInt64: w.Write((ulong)value); break;
            case GgufValueType.Int64: w.Write((long)value); break;
            case GgufValueType.Float32: w.Write((float)value); break;
            case GgufValueType.Float64: w.Write((double)value); break;
            case GgufValueType.Bool: w.Write((byte)((bool)value ? 1 : 0)); break;
            default: WriteString(w, (string)value ?? throw new ArgumentException("null string in array")); break;
        }
    }

    private sealed record PendingTensor(string Name, GgmlType Type, long[] Dimensions, long ByteSize, Action<Stream> WriteData);

    /// <summary>Write-only pass-through that counts bytes (works for non-seekable targets).</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long Written { get; private set; }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => Written;

        public override long Position
        {
            get => Written;
            set => throw new NotSupportedException();
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            inner.Write(buffer, offset, count);
            Written += count;
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            Written += buffer.Length;
        }

        public override void WriteByte(byte value)
        {
            inner.WriteByte(value);
            Written++;
        }
    }
}
