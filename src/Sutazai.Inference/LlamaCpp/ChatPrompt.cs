using System.Text;
using LLama;
using Microsoft.Extensions.AI;

namespace Sutazai.Inference.LlamaCpp;

/// <summary>
/// Turns chat messages into the model's own prompt format with llama.cpp's template engine (the GGUF's
/// <c>tokenizer.chat_template</c>), ending with the assistant prefix. A model without a template, or with one llama.cpp
/// does not recognise, falls back to ChatML.
/// </summary>
public static class ChatPrompt
{
    public const string FallbackTemplate = "chatml";

    public static string Render(LLamaWeights weights, IEnumerable<ChatMessage> messages, string? instructions, bool hasModelTemplate)
    {
        var all = new List<(string Role, string Content)>();
        if (!string.IsNullOrWhiteSpace(instructions)) all.Add(("system", instructions));
        foreach (var message in messages) all.Add((message.Role.Value, message.Text));

        if (hasModelTemplate)
        {
            try
            {
                return Apply(new LLamaTemplate(weights, strict: true), all);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // llama.cpp only knows templates it can match; anything else uses the fallback below.
            }
        }
        return Apply(new LLamaTemplate(FallbackTemplate), all);
    }

    private static string Apply(LLamaTemplate template, List<(string Role, string Content)> messages)
    {
        template.AddAssistant = true;
        foreach (var (role, content) in messages) template.Add(role, content);
        return Encoding.UTF8.GetString(template.Apply());
    }
}
