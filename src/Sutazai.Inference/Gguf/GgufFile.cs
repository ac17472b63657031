using System.Globalization;

namespace Sutazai.Inference.Gguf;

/// <summary>
/// A GGUF array metadata value. Small arrays are materialized into <see cref="Values"/>;
/// arrays longer than <see cref="GgufReaderOptions.MaxArrayElements"/> (for example
/// <c>tokenizer.ggml.tokens</c> of a real model) are skipped on read and only
/// <see cref="Count"/> and <see cref="ElementType"/> are known.
/// </summary>
public sealed class GgufArray
{
    public GgufArray(GgufValueType elementType, long count, Array? values)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (values is not null && values.LongLength != count)
        {
            throw new ArgumentException("values length does not match count", nameof(values));
        }

        ElementType = elementType;
        Count = count;
        Values = values;
    }

    /// <summary>Element type. Nested arrays have <see cref="GgufValueType.Array"/>.</summary>
    public GgufValueType ElementType { get; }

    /// <summary>Number of elements stored in the file (always known, even when skipped).</summary>
    public long Count { get; }

    /// <summary>
    /// The elements as a typed CLR array, or null when the array was skipped.
    /// The CLR element type follows <see cref="ElementType"/>: byte, sbyte, ushort, short, uint, int,
    /// float, bool, string, ulong, long, double, or <see cref="GgufArray"/> for nested arrays.
    /// </summary>
    public Array? Values { get; }

    /// <summary>True when <see cref="Values"/> holds the elements.</summary>
    public bool IsMaterialized => Values is not null;

    /// <summary>Elements as strings (null when skipped or not a string array).</summary>
    public IReadOnlyList<string>? AsStrings() => Values as string[];

    /// <summary>Integer elements widened to <see cref="long"/> (null when skipped or not an integer array; UInt64 values above long.MaxValue throw).</summary>
    public IReadOnlyList<long>? AsInt64()
    {
        if (Values is null || !IsIntegerType(ElementType))
        {
            return null;
        }

        var result = new long[Values.Length];
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = Convert.ToInt64(Values.GetValue(i), CultureInfo.InvariantCulture);
        }

        return result;
    }

    /// <summary>Numeric elements widened to <see cref="double"/> (null when skipped or not numeric).</summary>
    public IReadOnlyList<double>? AsDouble()
    {
        if (Values is null || ElementType is GgufValueType.String or GgufValueType.Array or GgufValueType.Bool)
        {
            return null;
        }

        var result = new double[Values.Length];
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = Convert.ToDouble(Values.GetValue(i), CultureInfo.InvariantCulture);
        }

        return result;
    }

    internal static bool IsIntegerType(GgufValueType t) => t is GgufValueType.UInt8 or GgufValueType.Int8
        or GgufValueType.UInt16 or GgufValueType.Int16 or GgufValueType.UInt32 or GgufValueType.Int32
        or GgufValueType.UInt64 or GgufValueType.Int64;

    public override string ToString() => IsMaterialized
        ? $"{ElementType}[{Count}]"
        : $"{ElementType}[{Count}] (not loaded)";
}

/// <summary>
/// Description of one tensor in a GGUF file (no data).
/// </summary>
/// <param name="Name">Tensor name, e.g. <c>blk.0.attn_q.weight</c>.</param>
/// <param name="Dimensions">ggml dimensions, innermost first (<c>ne[0]</c> is the contiguous row length).</param>
/// <param name="Type">Element type.</param>
/// <param name="Offset">Byte offset of the data relative to <see cref="GgufFile.TensorDataOffset"/>.</param>
public sealed record GgufTensorInfo(string Name, IReadOnlyList<long> Dimensions, GgmlType Type, long Offset)
{
    /// <summary>Product of the dimensions.</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Dimensions)
            {
                n = checked(n * d);
            }

            return n;
        }
    }

    /// <summary>Size of the tensor data in bytes, or null when the type is unknown.</summary>
    public long? ByteSize => GgmlTypeInfo.TensorBytes(Type, Dimensions);

    /// <summary>Canonical type name ("F32", "Q4_K", ...).</summary>
    public string TypeName => GgmlTypeInfo.Name(Type);

    public override string ToString() =>
        $"{Name} [{string.Join(", ", Dimensions)}] {TypeName} @{Offset}";
}

/// <summary>
/// Header, metadata and tensor directory of a GGUF file, as returned by <see cref="GgufReader"/>.
/// </summary>
/// <remarks>
/// Metadata values are boxed CLR values matching the GGUF type: byte, sbyte, ushort, short, uint, int,
/// float, bool, string, ulong, long, double, or <see cref="GgufArray"/> for arrays. The dictionary is
/// filled in file order and never modified afterwards, so it enumerates in file order.
/// </remarks>
public sealed record GgufFile
{
    public GgufFile(
        uint version,
        IReadOnlyDictionary<string, object> metadata,
        IReadOnlyList<GgufTensorInfo> tensors,
        uint alignment,
        long tensorDataOffset,
        long tensorDataBytes)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(tensors);
        Version = version;
        Metadata = metadata;
        Tensors = tensors;
        Alignment = alignment;
        TensorDataOffset = tensorDataOffset;
        TensorDataBytes = tensorDataBytes;

        long parameters = 0;
        foreach (var t in tensors)
        {
            parameters = checked(parameters + t.ElementCount);
        }

        ParameterCount = parameters;
        Architecture = GetString("general.architecture");
        Quantization = ComputeQuantization();
    }

    /// <summary>GGUF format version (2 or 3).</summary>
    public uint Version { get; }

    /// <summary>All metadata key/values (see type remarks on <see cref="GgufFile"/>).</summary>
    public IReadOnlyDictionary<string, object> Metadata { get; }

    /// <summary>Tensor directory in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    /// <summary>Data alignment (<c>general.alignment</c>, default 32).</summary>
    public uint Alignment { get; }

    /// <summary>Absolute byte offset where tensor data starts.</summary>
    public long TensorDataOffset { get; }

    /// <summary>Sum of the tensor data sizes in bytes (excluding alignment padding).</summary>
    public long TensorDataBytes { get; }

    /// <summary>Sum of tensor element counts.</summary>
    public long ParameterCount { get; }

    /// <summary><c>general.architecture</c>, e.g. "llama".</summary>
    public string? Architecture { get; }

    /// <summary><c>general.name</c>.</summary>
    public string? Name => GetString("general.name");

    /// <summary><c>{arch}.context_length</c> (training context).</summary>
    public long? ContextLength => GetArchInt64("context_length");

    /// <summary><c>{arch}.embedding_length</c>.</summary>
    public long? EmbeddingLength => GetArchInt64("embedding_length");

    /// <summary><c>{arch}.block_count</c> (layers).</summary>
    public long? BlockCount => GetArchInt64("block_count");

    /// <summary><c>{arch}.attention.head_count</c>.</summary>
    public long? HeadCount => GetArchInt64("attention.head_count");

    /// <summary>Vocabulary size: length of <c>tokenizer.ggml.tokens</c>, else <c>{arch}.vocab_size</c>.</summary>
    public long? VocabularySize => GetArray("tokenizer.ggml.tokens")?.Count ?? GetArchInt64("vocab_size");

    /// <summary><c>general.file_type</c> (llama_ftype), or null.</summary>
    public int? FileType
    {
        get
        {
            long? v = GetInt64("general.file_type");
            return v is >= int.MinValue and <= int.MaxValue ? (int)v.Value : null;
        }
    }

    /// <summary>
    /// Quantization label such as "F32", "F16", "Q4_K_M", "Q8_0": the name of <c>general.file_type</c>
    /// when present and known, else the type holding most elements among the multi-dimensional tensors
    /// (e.g. "Q4_K"); null when neither is available.
    /// </summary>
    public string? Quantization { get; }

    /// <summary><c>tokenizer.chat_template</c> (Jinja source) or null.</summary>
    public string? ChatTemplate => GetString("tokenizer.chat_template");

    /// <summary>String value of <paramref name="key"/>, or null when absent or not a string.</summary>
    public string? GetString(string key) =>
        Metadata.TryGetValue(key, out var v) ? v as string : null;

    /// <summary>Integer value of <paramref name="key"/> widened to long (any GGUF integer type), or null.</summary>
    public long? GetInt64(string key)
    {
        if (!Metadata.TryGetValue(key, out var v))
        {
            return null;
        }

        return v switch
        {
            byte b => b,
            sbyte sb => sb,
            ushort us => us,
            short s => s,
            uint ui => ui,
            int i => i,
            ulong ul when ul <= long.MaxValue => (long)ul,
            long l => l,
            _ => null,
        };
    }

    /// <summary>Floating-point (or integer) value of <paramref name="key"/> as double, or null.</summary>
    public double? GetDouble(string key)
    {
        if (Metadata.TryGetValue(key, out var v))
        {
            switch (v)
            {
                case float f:
                    return f;
                case double d:
                    return d;
            }
        }

        return GetInt64(key);
    }

    /// <summary>Boolean value of <paramref name="key"/>, or null.</summary>
    public bool? GetBool(string key) =>
        Metadata.TryGetValue(key, out var v) && v is bool b ? b : null;

    /// <summary>Array value of <paramref name="key"/>, or null.</summary>
    public GgufArray? GetArray(string key) =>
        Metadata.TryGetValue(key, out var v) ? v as GgufArray : null;

    private long? GetArchInt64(string suffix) =>
        Architecture is null ? null : GetInt64(Architecture + "." + suffix);

    private string? ComputeQuantization()
    {
        if (FileType is int ft && GgmlTypeInfo.FileTypeName(ft) is string name)
        {
            return name;
        }

        var totals = new Dictionary<GgmlType, long>();
        bool anyMatrix = Tensors.Any(t => t.Dimensions.Count >= 2);
        foreach (var t in Tensors)
        {
            if (anyMatrix && t.Dimensions.Count < 2)
            {
                continue;
            }

            totals[t.Type] = totals.GetValueOrDefault(t.Type) + t.ElementCount;
        }

        return totals.Count == 0
            ? null
            : GgmlTypeInfo.Name(totals.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key).First().Key);
    }
}
