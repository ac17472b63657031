namespace Sutazai.Server.Conversations;

public static class ConversationsSetup
{
    public static WebApplicationBuilder AddSutazaiConversations(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<ReplyHub>();
        builder.Services.AddScoped<ConversationService>();
        return builder;
    }
}
