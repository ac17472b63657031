namespace Sutazai.Inference.Gguf;

/// <summary>Type tag of a GGUF metadata value (the on-disk <c>gguf_type</c> enumeration).</summary>
public enum GgufValueType : uint
{
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
}

/// <summary>
/// ggml tensor element types as stored in GGUF tensor infos (<c>enum ggml_type</c>).
/// Values that were removed from ggml (4, 5, 31-33, 36-38) are intentionally absent;
/// unknown values can still be carried in this enum and are reported as <c>type_N</c>.
/// </summary>
#pragma warning disable CA1707 // Names mirror ggml's canonical type names (Q4_K etc.).
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
}
#pragma warning restore CA1707

/// <summary>Size information for ggml tensor types and llama.cpp file-type names.</summary>
public static class GgmlTypeInfo
{
    // (elements per block, bytes per block), indexed by ggml_type value. (0,0) = unknown/removed.
    private static readonly (int BlockSize, int TypeSize)[] Traits = BuildTraits();

    private static (int, int)[] BuildTraits()
    {
        var t = new (int, int)[40];
        t[(int)GgmlType.F32] = (1, 4);
        t[(int)GgmlType.F16] = (1, 2);
        t[(int)GgmlType.Q4_0] = (32, 18);
        t[(int)GgmlType.Q4_1] = (32, 20);
        t[(int)GgmlType.Q5_0] = (32, 22);
        t[(int)GgmlType.Q5_1] = (32, 24);
        t[(int)GgmlType.Q8_0] = (32, 34);
        t[(int)GgmlType.Q8_1] = (32, 36);
        t[(int)GgmlType.Q2_K] = (256, 84);
        t[(int)GgmlType.Q3_K] = (256, 110);
        t[(int)GgmlType.Q4_K] = (256, 144);
        t[(int)GgmlType.Q5_K] = (256, 176);
        t[(int)GgmlType.Q6_K] = (256, 210);
        t[(int)GgmlType.Q8_K] = (256, 292);
        t[(int)GgmlType.IQ2_XXS] = (256, 66);
        t[(int)GgmlType.IQ2_XS] = (256, 74);
        t[(int)GgmlType.IQ3_XXS] = (256, 98);
        t[(int)GgmlType.IQ1_S] = (256, 50);
        t[(int)GgmlType.IQ4_NL] = (32, 18);
        t[(int)GgmlType.IQ3_S] = (256, 110);
        t[(int)GgmlType.IQ2_S] = (256, 82);
        t[(int)GgmlType.IQ4_XS] = (256, 136);
        t[(int)GgmlType.I8] = (1, 1);
        t[(int)GgmlType.I16] = (1, 2);
        t[(int)GgmlType.I32] = (1, 4);
        t[(int)GgmlType.I64] = (1, 8);
        t[(int)GgmlType.F64] = (1, 8);
        t[(int)GgmlType.IQ1_M] = (256, 56);
        t[(int)GgmlType.BF16] = (1, 2);
        t[(int)GgmlType.TQ1_0] = (256, 54);
        t[(int)GgmlType.TQ2_0] = (256, 66);
        t[(int)GgmlType.MXFP4] = (32, 17);
        return t;
    }

    /// <summary>True when the block layout of <paramref name="type"/> is known.</summary>
    public static bool IsKnown(GgmlType type) => (uint)type < (uint)Traits.Length && Traits[(int)type].BlockSize != 0;

    /// <summary>Elements per quantization block (1 for plain float/int types).</summary>
    public static int BlockSize(GgmlType type) => IsKnown(type)
        ? Traits[(int)type].BlockSize
        : throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown ggml type.");

    /// <summary>Bytes per quantization block.</summary>
    public static int TypeSize(GgmlType type) => IsKnown(type)
        ? Traits[(int)type].TypeSize
        : throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown ggml type.");

    /// <summary>Canonical ggml name of a tensor type ("F32", "Q4_K", ...); "type_N" when unknown.</summary>
    public static string Name(GgmlType type) => IsKnown(type)
        ? type.ToString()
        : "type_" + ((uint)type).ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Bytes occupied by a tensor of the given type and ggml dimensions (<c>ne[0]</c> first),
    /// or null when the type is unknown or <c>ne[0]</c> is not a multiple of the block size.
    /// </summary>
    public static long? TensorBytes(GgmlType type, IReadOnlyList<long> dimensions)
    {
        ArgumentNullException.ThrowIfNull(dimensions);
        if (!IsKnown(type) || dimensions.Count == 0)
        {
            return null;
        }

        var (blockSize, typeSize) = Traits[(int)type];
        long ne0 = dimensions[0];
        if (ne0 % blockSize != 0)
        {
            return null;
        }

        try
        {
            long bytes = checked(ne0 / blockSize * typeSize);
            for (int i = 1; i < dimensions.Count; i++)
            {
                bytes = checked(bytes * dimensions[i]);
            }

            return bytes;
        }
        catch (OverflowException)
        {
            return null;
        }
    }

    /// <summary>
    /// Human-readable name of a llama.cpp <c>general.file_type</c> (<c>llama_ftype</c>) value, e.g. 15 → "Q4_K_M".
    /// The "guessed" flag (1024) is ignored. Returns null for unknown values.
    /// </summary>
    public static string? FileTypeName(int fileType) => (fileType & ~1024) switch
    {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        4 => "Q4_1_SOME_F16",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        33 => "Q4_0_4_4",
        34 => "Q4_0_4_8",
        35 => "Q4_0_8_8",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => null,
    };
}

/// <summary>llama.cpp token types stored in <c>tokenizer.ggml.token_type</c> (<c>llama_token_type</c>).</summary>
public enum GgufTokenType
{
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}
