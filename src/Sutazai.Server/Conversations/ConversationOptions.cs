using System.ComponentModel.DataAnnotations;

namespace Sutazai.Server.Conversations;

public sealed class ConversationOptions
{
    public const string Section = "Sutazai:Conversations";

    /// <summary>Most messages one import may hold; it also bounds the depth of the imported tree.</summary>
    [Range(1, 1_000_000)]
    public int MaxImportMessages { get; set; }

    /// <summary>Longest message text (characters) one may send, edit or import; checked before anything tokenizes it.</summary>
    [Range(1, 10_000_000)]
    public int MaxMessageChars { get; set; }
}
